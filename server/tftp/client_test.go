package tftp

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// testClient is a TFTP read client for the tests: options, windowsize
// (RFC 7440 receiver), block number rollover, the Raspberry Pi's early
// terminate, and a lossy mode that drops packets in both directions with a
// seeded generator.
type testClient struct {
	Blksize    int  // 0: do not send the option
	Windowsize int  // 0: do not send the option
	Tsize      bool // send "tsize 0"
	TimeoutOpt int  // 0: do not send the option
	Extra      []option
	Mode       string // default octet
	WRQ        bool   // send a write request instead

	// EarlyTerminate answers the OACK with ERROR 0 "Early terminate".
	EarlyTerminate bool
	// Loss is the probability of dropping each packet sent or received.
	Loss float64
	Seed uint64
	// Retransmit is the client's own timeout (default 200ms); MaxTries the
	// consecutive timeouts before it gives up (default 20).
	Retransmit time.Duration
	MaxTries   int
	// Deadline, if set, ends the transfer with an error at the next
	// timeout after it.
	Deadline time.Time
}

type tftpError struct {
	Code uint16
	Msg  string
}

func (e *tftpError) Error() string { return fmt.Sprintf("TFTP ERROR %d %q", e.Code, e.Msg) }

type fetchResult struct {
	N       int64
	OACK    map[string]string
	Blocks  int64 // DATA blocks accepted
	Dropped int   // packets dropped by the lossy mode
}

// Get fetches file from addr into w.
func (c *testClient) Get(addr, file string, w io.Writer) (fetchResult, error) {
	var res fetchResult
	srv, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return res, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: srv.IP})
	if err != nil {
		return res, err
	}
	defer conn.Close()
	var rng *rand.Rand
	if c.Loss > 0 {
		rng = rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	}
	drop := func() bool {
		if rng != nil && rng.Float64() < c.Loss {
			res.Dropped++
			return true
		}
		return false
	}
	retransmit := c.Retransmit
	if retransmit == 0 {
		retransmit = 200 * time.Millisecond
	}
	maxTries := c.MaxTries
	if maxTries == 0 {
		maxTries = 20
	}

	req := &request{Op: opRRQ, Filename: file, Mode: c.Mode}
	if c.WRQ {
		req.Op = opWRQ
	}
	if req.Mode == "" {
		req.Mode = "octet"
	}
	if c.Blksize > 0 {
		req.Options = append(req.Options, option{"blksize", strconv.Itoa(c.Blksize)})
	}
	if c.Tsize {
		req.Options = append(req.Options, option{"tsize", "0"})
	}
	if c.TimeoutOpt > 0 {
		req.Options = append(req.Options, option{"timeout", strconv.Itoa(c.TimeoutOpt)})
	}
	if c.Windowsize > 0 {
		req.Options = append(req.Options, option{"windowsize", strconv.Itoa(c.Windowsize)})
	}
	req.Options = append(req.Options, c.Extra...)
	rrq := appendRequest(nil, req)

	var peer *net.UDPAddr // the server's transfer ID, from its first reply
	send := func(p []byte) error {
		if drop() {
			return nil
		}
		to := peer
		if to == nil {
			to = srv
		}
		_, err := conn.WriteToUDP(p, to)
		return err
	}
	ack := func(b uint16) error { return send(appendACK(nil, b)) }

	blksize, window := 512, 1
	expected := uint16(1) // next block wanted
	inWindow := 0         // blocks received since the last ACK
	gapAcked := false     // the current gap has been reported
	started := false      // DATA or OACK seen
	tries := 0
	buf := make([]byte, max(c.Blksize, 512)+4) // a longer DATA shows as a short read below
	if err := send(rrq); err != nil {
		return res, err
	}
	for {
		conn.SetReadDeadline(time.Now().Add(retransmit))
		n, from, err := conn.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			tries++
			if !c.Deadline.IsZero() && time.Now().After(c.Deadline) {
				return res, fmt.Errorf("client: deadline passed at block %d after %d bytes", expected, res.N)
			}
			if tries > maxTries {
				return res, fmt.Errorf("client: timeout waiting for block %d after %d bytes", expected, res.N)
			}
			if !started {
				err = send(rrq)
			} else {
				err = ack(expected - 1)
			}
			if err != nil {
				return res, err
			}
			continue
		}
		if err != nil {
			return res, err
		}
		if peer == nil {
			peer = from
		} else if !from.IP.Equal(peer.IP) || from.Port != peer.Port {
			conn.WriteToUDP(appendError(nil, errUnknownTID, "unknown transfer ID"), from)
			continue
		}
		if drop() {
			continue
		}
		pk, err := parsePacket(buf[:n])
		if err != nil {
			return res, fmt.Errorf("client: %w", err)
		}
		switch pk.Op {
		case opERROR:
			return res, &tftpError{pk.Code, pk.Msg}
		case opOACK:
			if started {
				if expected == 1 {
					ack(0) // our ACK 0 was lost
				}
				continue
			}
			started = true
			tries = 0
			res.OACK = map[string]string{}
			for _, o := range pk.Options {
				res.OACK[o.Name] = o.Value
			}
			if v, ok := res.OACK["blksize"]; ok {
				blksize, _ = strconv.Atoi(v)
			}
			if v, ok := res.OACK["windowsize"]; ok {
				window, _ = strconv.Atoi(v)
			}
			if c.EarlyTerminate {
				return res, send(appendError(nil, errUndefined, "Early terminate"))
			}
			if err := ack(0); err != nil {
				return res, err
			}
		case opDATA:
			started = true
			if pk.Block != expected {
				// Duplicate or out of order: report the last good block,
				// every time in lock-step, once per gap with a window.
				if window == 1 || !gapAcked {
					gapAcked = true
					ack(expected - 1)
				}
				inWindow = 0
				continue
			}
			if len(pk.Data) > blksize {
				return res, fmt.Errorf("client: block %d has %d bytes, blksize %d", pk.Block, len(pk.Data), blksize)
			}
			if _, err := w.Write(pk.Data); err != nil {
				return res, err
			}
			res.N += int64(len(pk.Data))
			res.Blocks++
			tries = 0
			gapAcked = false
			inWindow++
			last := len(pk.Data) < blksize
			if last || inWindow == window {
				ack(expected)
				inWindow = 0
			}
			expected++
			if last {
				if rng != nil {
					c.dally(conn, peer, expected-1, retransmit, drop)
				}
				return res, nil
			}
		}
	}
}

// dally re-acknowledges the last block if the server sends it again (our
// final ACK was lost), as RFC 1350 suggests.
func (c *testClient) dally(conn *net.UDPConn, peer *net.UDPAddr, last uint16, d time.Duration, drop func() bool) {
	end := time.Now().Add(d * 3)
	buf := make([]byte, 65536+4)
	for {
		conn.SetReadDeadline(end)
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if drop() {
			continue
		}
		if pk, err := parsePacket(buf[:n]); err == nil && pk.Op == opDATA && pk.Block == last && !drop() {
			conn.WriteToUDP(appendACK(nil, last), peer)
		}
	}
}

// testServer runs s on 127.0.0.1 on a free high port and records its
// events.
type testServer struct {
	*Server
	Addr string

	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

func startServer(t testing.TB, s *Server) *testServer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, Addr: conn.LocalAddr().String(), notify: make(chan struct{}, 1)}
	log := s.Log
	s.Log = func(e Event) {
		if log != nil {
			log(e)
		}
		ts.mu.Lock()
		ts.events = append(ts.events, e)
		ts.mu.Unlock()
		select {
		case ts.notify <- struct{}{}:
		default:
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(conn) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// waitEvent waits for the event about path.
func (ts *testServer) waitEvent(t testing.TB, path string) Event {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		ts.mu.Lock()
		for _, e := range ts.events {
			if e.Path == path {
				ts.mu.Unlock()
				return e
			}
		}
		ts.mu.Unlock()
		select {
		case <-ts.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no event for %q", path)
		}
	}
}
