package tftp

import (
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzNegotiate: whatever options a request carries, what the server
// grants stays within its limits (block size, window, timeout), its
// buffer is no larger than a block, the OACK names only options the
// client sent, once each, with numeric values, and the OACK packet
// decodes to the same options.
func FuzzNegotiate(f *testing.F) {
	f.Add([]byte("\x00\x019ffefdef/start4.elf\x00octet\x00tsize\x000\x00blksize\x001468\x00"), int64(2_000_000), 0, 0, int64(0))
	f.Add([]byte("\x00\x01x\x00octet\x00blksize\x0065464\x00windowsize\x0065535\x00timeout\x00255\x00"), int64(4), 512, 8, int64(5))
	f.Add([]byte("\x00\x01x\x00octet\x00BLKSIZE\x007\x00timeout\x000\x00windowsize\x00-1\x00tsize\x00x\x00"), int64(0), 70000, 100000, int64(-1))
	f.Add([]byte("\x00\x01x\x00netascii\x00timeout\x00+9\x00blksize\x0099999999999999999999\x00"), int64(1<<40), 9, 1, int64(300))
	f.Fuzz(func(t *testing.T, in []byte, size int64, maxBlk, maxWin int, maxTimeoutS int64) {
		req, err := parseRequest(in)
		if err != nil {
			return
		}
		if size < 0 {
			size = -size
		}
		if size < 0 { // math.MinInt64
			size = 0
		}
		s := &Server{MaxBlockSize: maxBlk, MaxWindow: maxWin, MaxTimeout: time.Duration(maxTimeoutS%1000) * time.Second}
		p, oack := s.negotiate(req, size)
		if p.blksize < minBlockSize || p.blksize > maxBlockSize || p.blksize > max(s.maxBlockSize(), defaultBlockSize) {
			t.Fatalf("blksize %d (server max %d)", p.blksize, s.maxBlockSize())
		}
		if p.window < 1 || p.window > s.maxWindow() {
			t.Fatalf("window %d (server max %d)", p.window, s.maxWindow())
		}
		if p.timeout < time.Second && p.timeout != s.timeout() || p.timeout > max(s.maxTimeout(), s.timeout()) {
			t.Fatalf("timeout %v (server max %v)", p.timeout, s.maxTimeout())
		}
		if n := bufferSize(p.blksize, size); n < 4 || n > 4+p.blksize {
			t.Fatalf("buffer of %d bytes for blksize %d and %d bytes", n, p.blksize, size)
		}
		seen := map[string]bool{}
		for _, o := range oack {
			if seen[o.Name] {
				t.Fatalf("option %q twice in the OACK %v", o.Name, oack)
			}
			seen[o.Name] = true
			v, ok := req.option(o.Name)
			if !ok {
				t.Fatalf("OACK option %q the client did not send", o.Name)
			}
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				t.Fatalf("OACK grants %q from a non-numeric value %q", o.Name, v)
			}
			if _, err := strconv.ParseInt(o.Value, 10, 64); err != nil {
				t.Fatalf("OACK value %q for %q", o.Value, o.Name)
			}
			switch o.Name {
			case "blksize", "tsize", "timeout", "windowsize":
			default:
				t.Fatalf("OACK names unknown option %q", o.Name)
			}
		}
		pk, err := parsePacket(appendOACK(nil, oack))
		if err != nil || pk.Op != opOACK {
			t.Fatalf("OACK %v does not parse: %v", oack, err)
		}
		if len(oack) > 0 || len(pk.Options) > 0 {
			if d := cmp.Diff(oack, pk.Options, cmp.AllowUnexported(option{})); d != "" {
				t.Fatalf("OACK round trip (-sent +parsed):\n%s", d)
			}
		}
	})
}

// FuzzParsePacket: what a transfer reads from a client never panics the
// parser, and an ACK, DATA or ERROR re-encodes to what was parsed.
func FuzzParsePacket(f *testing.F) {
	f.Add([]byte{0, 4, 0, 1})
	f.Add([]byte{0, 4, 0xff, 0xff, 'x'})
	f.Add([]byte{0, 3, 0, 2, 'a', 'b', 'c'})
	f.Add([]byte("\x00\x05\x00\x01File not found\x00"))
	f.Add([]byte("\x00\x05\x00\x08no\x00trailing"))
	f.Add([]byte("\x00\x06blksize\x001468\x00tsize\x00"))
	f.Add([]byte{0, 9})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, in []byte) {
		pk, err := parsePacket(in)
		if err != nil {
			return
		}
		if op := binary.BigEndian.Uint16(in); pk.Op != op {
			t.Fatalf("opcode %d parsed as %d", op, pk.Op)
		}
		var again []byte
		switch pk.Op {
		case opACK:
			again = appendACK(nil, pk.Block)
		case opDATA:
			again = make([]byte, 4, 4+len(pk.Data))
			putDataHeader(again, pk.Block)
			again = append(again, pk.Data...)
		case opERROR:
			again = appendError(nil, pk.Code, pk.Msg)
		case opOACK:
			again = appendOACK(nil, pk.Options)
		default:
			return
		}
		pk2, err := parsePacket(again)
		if err != nil {
			t.Fatalf("re-encoded %+v does not parse: %v", pk, err)
		}
		if d := cmp.Diff(pk, pk2, cmp.AllowUnexported(packet{}, option{})); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}
