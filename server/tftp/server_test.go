package tftp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// randomBytes returns n bytes from a seeded generator.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTransfers(t *testing.T) {
	root := t.TempDir()
	small := randomBytes(300_000, 1)
	writeFile(t, root, "small.bin", small)
	writeFile(t, root, "empty", nil)
	writeFile(t, root, "9ffefdef/start4.elf", small[:123_457])
	exact := randomBytes(1024*64, 2) // exactly 64 blocks of 1024
	writeFile(t, root, "exact1024", exact)
	writeFile(t, root, "exact512", exact[:512*3])

	tests := []struct {
		name       string
		file       string
		want       []byte
		c          testClient
		wantOACK   map[string]string
		wantBlocks int64
		blk, win   int
	}{
		{name: "plain 512", file: "small.bin", want: small, blk: 512, win: 1,
			wantBlocks: 300_000/512 + 1},
		{name: "pi4 blksize 1024 tsize", file: "9ffefdef/start4.elf", want: small[:123_457],
			c:        testClient{Blksize: 1024, Tsize: true},
			wantOACK: map[string]string{"blksize": "1024", "tsize": "123457"}, blk: 1024, win: 1},
		{name: "pi5 blksize 1468 tsize", file: "small.bin", want: small,
			c:        testClient{Blksize: 1468, Tsize: true},
			wantOACK: map[string]string{"blksize": "1468", "tsize": "300000"}, blk: 1468, win: 1},
		{name: "blksize 1468 windowsize 16", file: "small.bin", want: small,
			c:        testClient{Blksize: 1468, Windowsize: 16},
			wantOACK: map[string]string{"blksize": "1468", "windowsize": "16"}, blk: 1468, win: 16},
		{name: "blksize 1468 windowsize 64", file: "small.bin", want: small,
			c:        testClient{Blksize: 1468, Windowsize: 64, Tsize: true},
			wantOACK: map[string]string{"blksize": "1468", "windowsize": "64", "tsize": "300000"}, blk: 1468, win: 64},
		{name: "blksize clamped to MaxBlockSize", file: "small.bin", want: small,
			c:        testClient{Blksize: 65464},
			wantOACK: map[string]string{"blksize": "1468"}, blk: 1468, win: 1},
		{name: "windowsize clamped to MaxWindow", file: "small.bin", want: small,
			c:        testClient{Windowsize: 1000},
			wantOACK: map[string]string{"windowsize": "64"}, blk: 512, win: 64},
		{name: "bad and unknown options ignored", file: "small.bin", want: small,
			c: testClient{Blksize: 7, Extra: []option{{"multicast", ""}, {"timeout", "0"}, {"utimeout", "1000"}}},
			// No option accepted: no OACK, straight to DATA 1.
			blk: 512, win: 1},
		{name: "timeout option echoed", file: "small.bin", want: small,
			c:        testClient{TimeoutOpt: 3, Tsize: true},
			wantOACK: map[string]string{"timeout": "3", "tsize": "300000"}, blk: 512, win: 1},
		{name: "netascii served as octet", file: "small.bin", want: small,
			c: testClient{Mode: "NetASCII"}, blk: 512, win: 1},
		{name: "leading slash", file: "/small.bin", want: small, blk: 512, win: 1},
		{name: "exact multiple of blksize", file: "exact1024", want: exact,
			c:          testClient{Blksize: 1024, Tsize: true},
			wantOACK:   map[string]string{"blksize": "1024", "tsize": "65536"},
			wantBlocks: 65, blk: 1024, win: 1}, // 64 full blocks and an empty one
		{name: "exact multiple windowed", file: "exact1024", want: exact,
			c:          testClient{Blksize: 1024, Windowsize: 16},
			wantOACK:   map[string]string{"blksize": "1024", "windowsize": "16"},
			wantBlocks: 65, blk: 1024, win: 16},
		{name: "exact 512", file: "exact512", want: exact[:1536], wantBlocks: 4, blk: 512, win: 1},
		{name: "empty file", file: "empty", want: nil, wantBlocks: 1, blk: 512, win: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, &Server{Root: root})
			var got bytes.Buffer
			res, err := tt.c.Get(ts.Addr, tt.file, &got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), tt.want) {
				t.Fatalf("got %d bytes, want %d (content differs)", got.Len(), len(tt.want))
			}
			if diff := cmp.Diff(tt.wantOACK, res.OACK); diff != "" {
				t.Errorf("OACK (-want +got):\n%s", diff)
			}
			if tt.wantBlocks != 0 && res.Blocks != tt.wantBlocks {
				t.Errorf("got %d DATA blocks, want %d", res.Blocks, tt.wantBlocks)
			}
			e := ts.waitEvent(t, tt.file)
			if e.Kind != KindServed || e.Err != nil || e.Bytes != int64(len(tt.want)) ||
				e.BlockSize != tt.blk || e.WindowSize != tt.win || e.EarlyTerminate {
				t.Errorf("event = %+v, want served %d bytes blksize %d windowsize %d", e, len(tt.want), tt.blk, tt.win)
			}
			t.Log(e)
		})
	}
}

func TestRefusals(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeFile(t, outside, "secret", []byte("secret"))
	writeFile(t, root, "ok", []byte("ok"))
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "abs-escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../"+filepath.Base(outside)+"/secret", filepath.Join(root, "rel-escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		file     string
		c        testClient
		wantCode uint16
		wantKind string
	}{
		{"not found", "start4.elf", testClient{}, errNotFound, KindNotFound},
		{"not found with options", "9ffefdef/start4.elf", testClient{Blksize: 1024, Tsize: true}, errNotFound, KindNotFound},
		{"WRQ", "ok", testClient{WRQ: true}, errAccess, KindError},
		{"dotdot", "../" + filepath.Base(outside) + "/secret", testClient{}, errAccess, KindError},
		{"dotdot inside", "dir/../ok", testClient{}, errAccess, KindError},
		{"absolute", "//etc/passwd", testClient{}, errAccess, KindError},
		{"control char", "ok\n", testClient{}, errAccess, KindError},
		{"absolute symlink out", "abs-escape", testClient{}, errAccess, KindError},
		{"relative symlink out", "rel-escape", testClient{}, errAccess, KindError},
		{"directory", "dir", testClient{}, errAccess, KindError},
		{"root", "/", testClient{}, errAccess, KindError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, &Server{Root: root})
			_, err := tt.c.Get(ts.Addr, tt.file, io.Discard)
			var te *tftpError
			if !errors.As(err, &te) || te.Code != tt.wantCode {
				t.Fatalf("got %v, want TFTP ERROR %d", err, tt.wantCode)
			}
			if bytes.Contains([]byte(te.Msg), []byte(root)) || bytes.Contains([]byte(te.Msg), []byte(outside)) {
				t.Errorf("error message %q leaks a server path", te.Msg)
			}
			e := ts.waitEvent(t, tt.file)
			if e.Kind != tt.wantKind || e.Err == nil {
				t.Errorf("event = %+v, want kind %s with an error", e, tt.wantKind)
			}
			t.Log(e)
		})
	}
	t.Run("WRQ message", func(t *testing.T) {
		ts := startServer(t, &Server{Root: root})
		_, err := (&testClient{WRQ: true}).Get(ts.Addr, "ok", io.Discard)
		want := &tftpError{errAccess, "access violation (read-only server)"}
		if diff := cmp.Diff(want, err); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if e := ts.waitEvent(t, "ok"); !errors.Is(e.Err, errReadOnly) {
			t.Errorf("event error %v, want errReadOnly", e.Err)
		}
	})
}

// The Raspberry Pi bootloader probes with blksize+tsize and answers the OACK
// with ERROR 0 "Early terminate".
func TestEarlyTerminate(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "9ffefdef/start4.elf", randomBytes(2_300_000, 3))
	ts := startServer(t, &Server{Root: root})
	res, err := (&testClient{Blksize: 1024, Tsize: true, EarlyTerminate: true}).Get(ts.Addr, "9ffefdef/start4.elf", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.OACK["tsize"]; got != "2300000" {
		t.Errorf("tsize = %q, want 2300000", got)
	}
	e := ts.waitEvent(t, "9ffefdef/start4.elf")
	if e.Kind != KindEarlyTerminate || !e.EarlyTerminate || e.Err != nil || e.Bytes != 0 {
		t.Errorf("event = %+v, want early-terminate without error", e)
	}
	// It must end at once, not after the retransmission timeouts.
	if e.Duration > 500*time.Millisecond {
		t.Errorf("early terminate took %v", e.Duration)
	}
	t.Log(e)
}

// patternFile writes a file where every 512-byte block starts with its
// block number, so a block delivered at the wrong place is caught.
func patternFile(t testing.TB, path string, size int64) []byte {
	t.Helper()
	b := make([]byte, size)
	for off := int64(0); off < size; off += 512 {
		blk := b[off:min(off+512, size)]
		for i := range blk {
			blk[i] = byte(off/512*7 + int64(i))
		}
		if len(blk) >= 8 {
			binary.BigEndian.PutUint64(blk, uint64(off/512+1))
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// 40 MB at blksize 512 is 81921 blocks: the block number wraps past 65535
// to 0 and goes on.
func TestRollover(t *testing.T) {
	if testing.Short() {
		t.Skip("40 MB lock-step transfer; skipped with -short")
	}
	root := t.TempDir()
	const size = 40 << 20
	data := patternFile(t, filepath.Join(root, "big"), size)
	want := sha256.Sum256(data)
	for _, c := range []testClient{{}, {Windowsize: 64}} {
		t.Run("windowsize"+strconv.Itoa(max(c.Windowsize, 1)), func(t *testing.T) {
			ts := startServer(t, &Server{Root: root})
			h := sha256.New()
			res, err := c.Get(ts.Addr, "big", h)
			if err != nil {
				t.Fatal(err)
			}
			if res.N != size || !bytes.Equal(h.Sum(nil), want[:]) || res.Blocks != size/512+1 {
				t.Fatalf("got %d bytes in %d blocks, want %d in %d, sha256 equal: %v",
					res.N, res.Blocks, size, size/512+1, bytes.Equal(h.Sum(nil), want[:]))
			}
			e := ts.waitEvent(t, "big")
			if e.Kind != KindServed || e.Bytes != size {
				t.Errorf("event %+v", e)
			}
			t.Log(e)
		})
	}
}

// A client that loses 5% of the packets in both directions still gets the
// file byte for byte, lock-step and windowed.
func TestPacketLoss(t *testing.T) {
	root := t.TempDir()
	data := randomBytes(400_000, 4)
	writeFile(t, root, "f", data)
	for _, c := range []testClient{
		{Blksize: 1024, Tsize: true},
		{Blksize: 1468, Windowsize: 16},
		{Blksize: 512, Windowsize: 64},
	} {
		c.Loss, c.Seed, c.Retransmit = 0.05, 42, 40*time.Millisecond
		t.Run("blksize"+strconv.Itoa(c.Blksize)+"_window"+strconv.Itoa(c.Windowsize), func(t *testing.T) {
			ts := startServer(t, &Server{Root: root, Timeout: 15 * time.Millisecond, Retries: 20})
			var got bytes.Buffer
			res, err := c.Get(ts.Addr, "f", &got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("got %d bytes, want %d (content differs)", got.Len(), len(data))
			}
			if res.Dropped == 0 {
				t.Fatal("the lossy client dropped nothing")
			}
			e := ts.waitEvent(t, "f")
			if e.Kind != KindServed {
				t.Errorf("event %+v", e)
			}
			t.Logf("dropped %d packets; %v", res.Dropped, e)
		})
	}
}

// A client that vanishes: the server retransmits Retries times, then gives
// up and logs an error.
func TestClientGone(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", randomBytes(10_000, 5))
	ts := startServer(t, &Server{Root: root, Timeout: 20 * time.Millisecond, Retries: 3})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv, _ := net.ResolveUDPAddr("udp4", ts.Addr)
	conn.WriteToUDP(appendRequest(nil, &request{Op: opRRQ, Filename: "f", Mode: "octet"}), srv)
	buf := make([]byte, 1024)
	datas := 0
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		if _, _, err := conn.ReadFromUDP(buf); err != nil {
			break
		}
		datas++
	}
	e := ts.waitEvent(t, "f")
	if e.Kind != KindError || !errors.Is(e.Err, errRetries) {
		t.Errorf("event %+v, want a retries error", e)
	}
	if datas != 4 { // DATA 1 and 3 retransmissions
		t.Errorf("got DATA %d times, want 4", datas)
	}
}

// Duplicate ACKs in lock-step must not cause retransmissions (Sorcerer's
// Apprentice syndrome).
func TestDuplicateACK(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", randomBytes(512*3+10, 6))
	ts := startServer(t, &Server{Root: root, Timeout: 5 * time.Second})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv, _ := net.ResolveUDPAddr("udp4", ts.Addr)
	conn.WriteToUDP(appendRequest(nil, &request{Op: opRRQ, Filename: "f", Mode: "octet"}), srv)
	buf := make([]byte, 1024)
	read := func() (packet, *net.UDPAddr) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := parsePacket(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		return pk, from
	}
	pk, tid := read()
	if pk.Op != opDATA || pk.Block != 1 {
		t.Fatalf("got %+v, want DATA 1", pk)
	}
	conn.WriteToUDP(appendACK(nil, 1), tid)
	conn.WriteToUDP(appendACK(nil, 1), tid) // delayed duplicate
	conn.WriteToUDP(appendACK(nil, 0), tid) // stale
	if pk, _ := read(); pk.Block != 2 {
		t.Fatalf("got block %d, want 2", pk.Block)
	}
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := conn.ReadFromUDP(buf); err == nil {
		pk, _ := parsePacket(buf[:n])
		t.Fatalf("duplicate ACK 1 caused a retransmission: %+v", pk)
	}
	conn.WriteToUDP(appendACK(nil, 2), tid)
	if pk, _ := read(); pk.Block != 3 {
		t.Fatalf("got block %d, want 3", pk.Block)
	}
	conn.WriteToUDP(appendACK(nil, 3), tid)
	if pk, _ := read(); pk.Block != 4 || len(pk.Data) != 10 {
		t.Fatalf("got block %d with %d bytes, want 4 with 10", pk.Block, len(pk.Data))
	}
	conn.WriteToUDP(appendACK(nil, 4), tid)
	if e := ts.waitEvent(t, "f"); e.Kind != KindServed {
		t.Errorf("event %+v", e)
	}
}

// A partial window ACK makes the server continue from the block after it.
func TestPartialWindowACK(t *testing.T) {
	root := t.TempDir()
	data := randomBytes(512*20, 7)
	writeFile(t, root, "f", data)
	ts := startServer(t, &Server{Root: root, Timeout: 5 * time.Second})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv, _ := net.ResolveUDPAddr("udp4", ts.Addr)
	conn.WriteToUDP(appendRequest(nil, &request{Op: opRRQ, Filename: "f", Mode: "octet",
		Options: []option{{"windowsize", "8"}}}), srv)
	buf := make([]byte, 1024)
	read := func() (packet, *net.UDPAddr) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := parsePacket(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		return pk, from
	}
	pk, tid := read()
	if pk.Op != opOACK {
		t.Fatalf("got %+v, want OACK", pk)
	}
	conn.WriteToUDP(appendACK(nil, 0), tid)
	for i := 1; i <= 8; i++ {
		if pk, _ := read(); pk.Block != uint16(i) {
			t.Fatalf("got block %d, want %d", pk.Block, i)
		}
	}
	conn.WriteToUDP(appendACK(nil, 5), tid) // 6..8 lost
	for i := 6; i <= 13; i++ {
		pk, _ := read()
		if pk.Block != uint16(i) || !bytes.Equal(pk.Data, data[(i-1)*512:i*512]) {
			t.Fatalf("got block %d, want %d", pk.Block, i)
		}
	}
	conn.WriteToUDP(appendACK(nil, 5), tid) // duplicate right after a gap resend: ignored
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := conn.ReadFromUDP(buf); err == nil {
		pk, _ := parsePacket(buf[:n])
		t.Fatalf("duplicate ACK after a resend caused another: %+v", pk)
	}
	conn.WriteToUDP(appendACK(nil, 13), tid)
	for i := 14; i <= 21; i++ {
		if pk, _ := read(); pk.Block != uint16(i) {
			t.Fatalf("got block %d, want %d", pk.Block, i)
		}
	}
	conn.WriteToUDP(appendACK(nil, 21), tid)
	if e := ts.waitEvent(t, "f"); e.Kind != KindServed || e.Bytes != int64(len(data)) {
		t.Errorf("event %+v", e)
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "boards/pi4/start4.elf", []byte("pi4 firmware"))
	abs := filepath.Join(t.TempDir(), "abs")
	writeFile(t, filepath.Dir(abs), "abs", []byte("absolute"))
	var mu sync.Mutex
	var gotRemote net.Addr
	s := &Server{Root: root, Resolve: func(remote net.Addr, p string) (string, error) {
		mu.Lock()
		gotRemote = remote
		mu.Unlock()
		switch p {
		case "9ffefdef/start4.elf":
			return "boards/pi4/start4.elf", nil
		case "abs":
			return abs, nil
		case "escape":
			return "../x", nil
		case "denied":
			return "", os.ErrPermission
		}
		return "", os.ErrNotExist
	}}
	ts := startServer(t, s)
	var got bytes.Buffer
	if _, err := (&testClient{}).Get(ts.Addr, "/9ffefdef/start4.elf", &got); err != nil || got.String() != "pi4 firmware" {
		t.Fatalf("got %q, %v", got.String(), err)
	}
	e := ts.waitEvent(t, "/9ffefdef/start4.elf")
	mu.Lock()
	seen := gotRemote
	mu.Unlock()
	if e.Resolved != filepath.Join(root, "boards/pi4/start4.elf") || seen == nil || seen.String() != e.Remote.String() {
		t.Errorf("event %+v, Resolve saw remote %v", e, seen)
	}
	got.Reset()
	if _, err := (&testClient{}).Get(ts.Addr, "abs", &got); err != nil || got.String() != "absolute" {
		t.Fatalf("got %q, %v", got.String(), err)
	}
	for name, code := range map[string]uint16{"escape": errAccess, "denied": errAccess, "other": errNotFound} {
		_, err := (&testClient{}).Get(ts.Addr, name, io.Discard)
		if te := (*tftpError)(nil); !errors.As(err, &te) || te.Code != code {
			t.Errorf("%s: got %v, want ERROR %d", name, err, code)
		}
	}
}

// Bad packets on the listening socket are logged, once per client
// address a minute (the rest go to Held), and the loop goes on.
func TestBadPackets(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", []byte("fine"))
	var mu sync.Mutex
	var held []Event
	ts := startServer(t, &Server{Root: root, Held: func(e Event) { mu.Lock(); held = append(held, e); mu.Unlock() }})
	srv, _ := net.ResolveUDPAddr("udp4", ts.Addr)
	send := func(from net.IP, pkts ...[]byte) {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: from})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, p := range pkts {
			conn.WriteToUDP(p, srv)
		}
	}
	bad := [][]byte{{}, {0}, {0, 4, 0, 1}, {0, 1}, {0, 1, 'f', 0}, {0, 1, 'f', 0, 'm', 'a', 'i', 'l', 0}, {9, 9, 9}}
	send(net.IPv4(127, 0, 0, 1), bad...)
	send(net.IPv4(127, 0, 0, 2), bad...)
	var got bytes.Buffer
	if _, err := (&testClient{}).Get(ts.Addr, "f", &got); err != nil || got.String() != "fine" {
		t.Fatalf("after bad packets: %q, %v", got.String(), err)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	logged := map[string]int{}
	for _, e := range ts.events {
		if e.Kind == KindError && errors.Is(e.Err, errMalformed) {
			logged[addrHost(e.Remote)]++
		}
	}
	if logged["127.0.0.1"] != 1 || logged["127.0.0.2"] != 1 {
		t.Errorf("bad packets logged %v times per address, want once each: %v", logged, ts.events)
	}
	// The empty datagram may not be delivered as a packet by every stack;
	// the others must each be logged or held.
	if n := len(held); n < 2*5 {
		t.Errorf("%d bad packets held back, want at least 10: %v", n, held)
	}
	for _, e := range held {
		if e.Kind != KindError || !errors.Is(e.Err, errMalformed) {
			t.Errorf("held %+v", e)
		}
	}
}

// Shutdown lets a transfer in flight finish; Serve returns ErrServerClosed.
func TestShutdown(t *testing.T) {
	root := t.TempDir()
	data := randomBytes(2<<20, 8)
	writeFile(t, root, "f", data)
	s := &Server{Root: root}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(conn) }()
	// A slow client: it starts, then the server is shut down mid-transfer.
	started := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		var buf bytes.Buffer
		w := &signalWriter{w: &buf, first: started}
		_, err := (&testClient{}).Get(conn.LocalAddr().String(), "f", w)
		if err == nil && !bytes.Equal(buf.Bytes(), data) {
			err = errors.New("content differs")
		}
		got <- err
	}()
	<-started
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-got; err != nil {
		t.Errorf("transfer in flight: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	if err := s.Serve(conn); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

type signalWriter struct {
	w     io.Writer
	first chan struct{}
	once  bool
}

func (s *signalWriter) Write(p []byte) (int, error) {
	if !s.once {
		s.once = true
		close(s.first)
	}
	return s.w.Write(p)
}
