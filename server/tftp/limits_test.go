package tftp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/testenv"
)

// Bounded state whatever clients send: limits on transfers in flight (in
// all, per client address), the timeout option, duplicate requests, read
// errors, buffer sizes, and a thousand stalled clients. Sources other than
// 127.0.0.1 are other loopback addresses (127.0.0.0/8 is all local).

// rawClient is one client socket on a loopback source address.
type rawClient struct {
	t    testing.TB
	conn *net.UDPConn
	srv  *net.UDPAddr
	tid  *net.UDPAddr // the transfer's port, from the first reply
	buf  []byte
}

func newRawClient(t testing.TB, src, srv string) *rawClient {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sa, err := net.ResolveUDPAddr("udp4", srv)
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, srv: sa, buf: make([]byte, 2048)}
}

// rrq sends a read request with options (name, value pairs).
func (c *rawClient) rrq(file string, opts ...string) {
	req := &request{Op: opRRQ, Filename: file, Mode: "octet"}
	for i := 0; i+1 < len(opts); i += 2 {
		req.Options = append(req.Options, option{opts[i], opts[i+1]})
	}
	if _, err := c.conn.WriteToUDP(appendRequest(nil, req), c.srv); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next packet within d; ok is false on timeout.
func (c *rawClient) read(d time.Duration) (pk packet, from *net.UDPAddr, ok bool) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.conn.ReadFromUDP(c.buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return packet{}, nil, false
	}
	if err != nil {
		c.t.Fatal(err)
	}
	pk, err = parsePacket(c.buf[:n])
	if err != nil {
		c.t.Fatalf("from %v: %v", from, err)
	}
	if c.tid == nil {
		c.tid = from
	}
	return pk, from, true
}

func (c *rawClient) mustRead(d time.Duration) (packet, *net.UDPAddr) {
	c.t.Helper()
	pk, from, ok := c.read(d)
	if !ok {
		c.t.Fatalf("%v: nothing from the server in %v", c.conn.LocalAddr(), d)
	}
	return pk, from
}

func (c *rawClient) ack(block uint16) {
	c.conn.WriteToUDP(appendACK(nil, block), c.tid)
}

// events returns the logged events of kind.
func (ts *testServer) eventsOf(kind string) []Event {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []Event
	for _, e := range ts.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// Over MaxTransfersPerClient and MaxTransfers requests get ERROR 0 and are
// logged once per client address, while another client, a real one too,
// is served.
func TestTransferLimits(t *testing.T) {
	root := t.TempDir()
	data := randomBytes(200_000, 30)
	writeFile(t, root, "f", data)
	// Stalled transfers outlive the test (5 s × 6 tries); Close ends them.
	ts := startServer(t, &Server{Root: root, MaxTransfers: 3, MaxTransfersPerClient: 2, Timeout: 5 * time.Second})

	stall := func(src string) {
		t.Helper()
		c := newRawClient(t, src, ts.Addr)
		c.rrq("f", "blksize", "1024", "tsize", "0")
		if pk, _ := c.mustRead(5 * time.Second); pk.Op != opOACK {
			t.Fatalf("%s: got %+v, want an OACK", src, pk)
		}
	}
	refused := func(src, want string) {
		t.Helper()
		c := newRawClient(t, src, ts.Addr)
		c.rrq("f", "blksize", "1024")
		pk, _ := c.mustRead(5 * time.Second)
		if pk.Op != opERROR || pk.Code != errUndefined || !strings.Contains(pk.Msg, want) {
			t.Fatalf("%s over the limit: got %+v, want ERROR 0 %q", src, pk, want)
		}
		t.Logf("%s: ERROR %d %q", src, pk.Code, pk.Msg)
	}

	// Per client: 127.0.0.2 has two transfers in flight; more are refused.
	stall("127.0.0.2")
	stall("127.0.0.2")
	for range 5 {
		refused("127.0.0.2", "too many transfers from this address (limit 2)")
	}
	// Meanwhile 127.0.0.1 is served: the test client, then tftp-hpa.
	var got bytes.Buffer
	if _, err := (&testClient{Blksize: 1468, Tsize: true}).Get(ts.Addr, "f", &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("another client during the per-client limit: %d bytes, %v", got.Len(), err)
	}
	if tool, err := findTool("tftp"); err == nil {
		_, port, _ := net.SplitHostPort(ts.Addr)
		dest := filepath.Join(t.TempDir(), "out")
		waitRunning(t, ts.Server, 2) // the test client's transfer has ended
		runClient(t, 30*time.Second, tool, "-m", "binary", "127.0.0.1", port, "-c", "get", "f", dest)
		sameFile(t, dest, data)
	} else if testenv.Strict() {
		t.Error("tftp-hpa not installed (RAMBOOT_STRICT=1: `make test` installs it via e2e/deps.sh): only the test client was served")
	} else {
		t.Log("tftp-hpa not installed: only the test client was served")
	}

	// In all: a third transfer fills the server; a fourth address is refused.
	waitRunning(t, ts.Server, 2)
	stall("127.0.0.3")
	refused("127.0.0.4", "too many transfers (limit 3)")
	refused("127.0.0.4", "too many transfers (limit 3)")

	var by []string
	for _, e := range ts.eventsOf(KindRefused) {
		by = append(by, addrHost(e.Remote))
		if e.Path != "f" || e.Err == nil {
			t.Errorf("refusal event %+v", e)
		}
	}
	if strings.Join(by, " ") != "127.0.0.2 127.0.0.4" {
		t.Errorf("refusals logged for %v, want once for 127.0.0.2 and once for 127.0.0.4", by)
	}
}

func findTool(name string) (string, error) { return exec.LookPath(name) }

func addrHost(a net.Addr) string {
	h, _, _ := net.SplitHostPort(a.String())
	return h
}

// waitRunning waits until n transfers are in flight.
func waitRunning(t testing.TB, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.running)
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transfers in flight, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A timeout option above MaxTimeout is left out of the OACK and the
// server's own Timeout applies; one within it is echoed.
func TestTimeoutOptionCapped(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", randomBytes(5000, 31))
	ts := startServer(t, &Server{Root: root, Timeout: 300 * time.Millisecond, MaxTimeout: 2 * time.Second})

	c := newRawClient(t, "127.0.0.1", ts.Addr)
	c.rrq("f", "timeout", "255", "tsize", "0")
	pk, _ := c.mustRead(5 * time.Second)
	if pk.Op != opOACK || len(pk.Options) != 1 || pk.Options[0] != (option{"tsize", "5000"}) {
		t.Fatalf("got %+v, want an OACK with tsize only", pk)
	}
	// Not acknowledged: the OACK comes again after Timeout, not 255 s.
	t0 := time.Now()
	if pk, _ := c.mustRead(3 * time.Second); pk.Op != opOACK {
		t.Fatalf("got %+v, want the OACK again", pk)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("OACK resent after %v, want about 300ms", d)
	}

	for _, tc := range []struct {
		ask  int
		want map[string]string
	}{
		{2, map[string]string{"timeout": "2", "tsize": "5000"}},
		{3, map[string]string{"tsize": "5000"}},
		{255, map[string]string{"tsize": "5000"}},
	} {
		res, err := (&testClient{TimeoutOpt: tc.ask, Tsize: true}).Get(ts.Addr, "f", io.Discard)
		if err != nil {
			t.Fatalf("timeout %d: %v", tc.ask, err)
		}
		if len(res.OACK) != len(tc.want) || res.OACK["timeout"] != tc.want["timeout"] {
			t.Errorf("timeout %d: OACK %v, want %v", tc.ask, res.OACK, tc.want)
		}
	}
}

// A repeated RRQ from the same address and port for the same file while
// its transfer runs is dropped: one transfer, one transfer ID, one event.
func TestDuplicateRRQDropped(t *testing.T) {
	root := t.TempDir()
	data := randomBytes(512*3+10, 32)
	writeFile(t, root, "f", data)
	ts := startServer(t, &Server{Root: root, Timeout: 5 * time.Second})
	c := newRawClient(t, "127.0.0.1", ts.Addr)
	for range 3 {
		c.rrq("f")
	}
	var got []byte
	for block := uint16(1); ; block++ {
		pk, from := c.mustRead(5 * time.Second)
		if from.Port != c.tid.Port || pk.Op != opDATA || pk.Block != block {
			t.Fatalf("got %+v from %v, want DATA %d from %v only", pk, from, block, c.tid)
		}
		if block == 1 {
			// Another request from the same port, DATA 1 on its way.
			c.rrq("f")
		}
		got = append(got, pk.Data...)
		c.ack(block)
		if len(pk.Data) < 512 {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d", len(got), len(data))
	}
	if pk, from, ok := c.read(300 * time.Millisecond); ok {
		t.Fatalf("after the transfer: %+v from %v (a second transfer?)", pk, from)
	}
	ts.waitEvent(t, "f")
	waitRunning(t, ts.Server, 0)
	if n := len(ts.eventsOf(KindServed)); n != 1 || len(ts.events) != 1 {
		t.Errorf("%d events (%d served), want 1: %v", len(ts.events), n, ts.events)
	}

	// Once it ended, the same request is a new transfer.
	c.tid = nil
	c.rrq("f")
	if pk, _ := c.mustRead(5 * time.Second); pk.Op != opDATA || pk.Block != 1 {
		t.Fatalf("after the end: got %+v, want DATA 1", pk)
	}
}

// A read that fails mid-transfer (the file shrank) is answered with ERROR.
func TestReadErrorSendsError(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", randomBytes(512*10, 33))
	ts := startServer(t, &Server{Root: root, Timeout: 5 * time.Second})
	c := newRawClient(t, "127.0.0.1", ts.Addr)
	c.rrq("f")
	if pk, _ := c.mustRead(5 * time.Second); pk.Op != opDATA || pk.Block != 1 {
		t.Fatalf("got %+v, want DATA 1", pk)
	}
	if err := os.Truncate(filepath.Join(root, "f"), 100); err != nil {
		t.Fatal(err)
	}
	c.ack(1)
	pk, _ := c.mustRead(5 * time.Second)
	if pk.Op != opERROR || pk.Code != errUndefined {
		t.Fatalf("got %+v, want ERROR 0", pk)
	}
	if strings.Contains(pk.Msg, root) {
		t.Errorf("ERROR message %q leaks a server path", pk.Msg)
	}
	e := ts.waitEvent(t, "f")
	if e.Kind != KindError || !errors.Is(e.Err, io.ErrUnexpectedEOF) {
		t.Errorf("event %+v, want an error wrapping io.ErrUnexpectedEOF", e)
	}
	t.Log(e)
}

// A transfer's buffer is one packet, no bigger than the file needs,
// whatever blksize and windowsize.
func TestBufferSize(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "tiny", []byte("boot"))
	big := randomBytes(300_000, 34)
	writeFile(t, root, "big", big)
	var mu sync.Mutex
	bufs := map[string]int{}
	s := &Server{Root: root, MaxBlockSize: 65464, MaxWindow: 64}
	s.onTransferEnd = func(t *transfer) {
		mu.Lock()
		bufs[strconv.FormatInt(t.size, 10)] = cap(t.pkt)
		mu.Unlock()
	}
	ts := startServer(t, s)
	for _, tc := range []struct {
		file    string
		want    []byte
		blksize int
		buf     int
	}{
		{"tiny", []byte("boot"), 65464, 8},
		{"big", big, 1468, 1472},
		{"big", big, 65464, 65468},
	} {
		var got bytes.Buffer
		if _, err := (&testClient{Blksize: tc.blksize, Windowsize: 64, Tsize: true}).Get(ts.Addr, tc.file, &got); err != nil || !bytes.Equal(got.Bytes(), tc.want) {
			t.Fatalf("%s: %d bytes, %v", tc.file, got.Len(), err)
		}
		waitRunning(t, ts.Server, 0)
		mu.Lock()
		b := bufs[strconv.Itoa(len(tc.want))]
		mu.Unlock()
		if b != tc.buf {
			t.Errorf("%s (%d bytes) at blksize %d windowsize 64: buffer %d bytes, want %d", tc.file, len(tc.want), tc.blksize, b, tc.buf)
		}
	}
}

// A thousand clients ask for the largest options (blksize, windowsize 64,
// timeout 255), take the OACK, acknowledge it and go silent. The server
// stays within one goroutine and about 10 kB (heap and stack, test
// clients included) per transfer, refuses the one over MaxTransfers, and
// every stalled transfer ends within (Retries+1) × Timeout.
func TestStalledClients(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 stalled transfers; skipped with -short")
	}
	const (
		clients   = DefaultMaxTransfers
		sources   = 4 // 250 per address, under DefaultMaxTransfersPerClient
		perClient = 24 << 10
	)
	root := t.TempDir()
	writeFile(t, root, "initramfs", randomBytes(1<<20, 35))
	// Timeout and Retries shorten the stall, not what it holds.
	s := &Server{Root: root, Timeout: 3 * time.Second, Retries: 1}
	ts := startServer(t, s)

	runtime.GC()
	var before, during runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	start := time.Now()

	conns := make([]*net.UDPConn, clients)
	srv, _ := net.ResolveUDPAddr("udp4", ts.Addr)
	rrq := appendRequest(nil, &request{Op: opRRQ, Filename: "initramfs", Mode: "octet", Options: []option{
		{"blksize", "1468"}, {"windowsize", "64"}, {"timeout", "255"}, {"tsize", "0"}}})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for i := w; i < clients; i += workers {
				src := net.IPv4(127, 0, 0, byte(2+i%sources))
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: src})
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
				c.SetReadBuffer(4096) // the stalled client drops the DATA
				c.WriteToUDP(rrq, srv)
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, from, err := c.ReadFromUDP(buf)
				if err != nil {
					errs <- err
					return
				}
				if pk, err := parsePacket(buf[:n]); err != nil || pk.Op != opOACK {
					errs <- errors.New("client " + strconv.Itoa(i) + ": no OACK")
					return
				}
				c.WriteToUDP(appendACK(nil, 0), from)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	setup := time.Since(start)

	// One more, from a fresh address, is over MaxTransfers.
	slow := setup > 3*time.Second // the first ones may have ended
	c := newRawClient(t, "127.0.0.9", ts.Addr)
	c.rrq("initramfs", "blksize", "1468")
	if pk, _ := c.mustRead(5 * time.Second); !slow && (pk.Op != opERROR || !strings.Contains(pk.Msg, "too many transfers")) {
		t.Errorf("request over MaxTransfers: got %+v, want ERROR too many transfers", pk)
	}

	s.mu.Lock()
	running := len(s.running)
	s.mu.Unlock()
	g := runtime.NumGoroutine() - g0
	runtime.ReadMemStats(&during)
	mem := int64(during.HeapInuse+during.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	t.Logf("%d stalled transfers set up in %v: %d goroutines more, heap+stack %.1f MB more (%.1f kB per transfer)",
		running, setup.Round(time.Millisecond), g, float64(mem)/1e6, float64(mem)/float64(clients)/1e3)
	if !slow && running != clients {
		t.Errorf("%d transfers in flight, want %d", running, clients)
	}
	if g > clients+workers+20 {
		t.Errorf("%d goroutines more with %d stalled transfers, want at most one each", g, clients)
	}
	if mem > clients*perClient {
		t.Errorf("heap and stacks grew %d bytes with %d stalled transfers, want at most %d kB each", mem, clients, perClient>>10)
	}

	// All end after (Retries+1) × Timeout: 6 s after the last OACK's ACK.
	deadline := time.Now().Add(12 * time.Second)
	for {
		s.mu.Lock()
		running = len(s.running)
		s.mu.Unlock()
		if running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transfers still in flight %v after the start", running, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("all ended %v after the start", time.Since(start).Round(time.Millisecond))
}
