package server

// The HTTP listener's limits: connections open at once in all
// (--http-max-conns) and per client address (--http-max-conns-per-client),
// and a response that makes no progress for --http-stall-timeout is
// closed. Together they bound what one host can hold however it behaves:
// a client that asks for a root image and never reads holds one
// connection (and the kernel's socket buffers) for the stall timeout, not
// for ever, and at most the per-client number of them at once.

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ramboot/ramboot/server/internal/ratelog"
)

const (
	// DefaultHTTPMaxConnsPerClient bounds the connections one client
	// address holds at once. A node needs one or two (iPXE fetches one
	// file at a time, the init downloads one image and reports on
	// another connection); more are refused at once.
	DefaultHTTPMaxConnsPerClient = 32
	// DefaultHTTPStallTimeout closes a connection whose response makes
	// no progress that long: each write of up to stallChunk bytes must
	// go out within it (a download slower than about 2 kB/s is ended).
	DefaultHTTPStallTimeout = 30 * time.Second

	// stallChunk is the most bytes one write deadline covers: a large
	// write (a file sent with sendfile) is sent in pieces of this size,
	// each with a new deadline, so that only a client that stops reading
	// runs into it, not one whose download takes minutes.
	stallChunk = 64 << 10
)

// httpConnState is what the HTTP listener keeps for a Server: the open
// connections per client, the counters on /metrics, and when each client
// was last logged (refusals and stalls are logged once per client a
// minute, with a count of the rest; the counters have them all).
type httpConnState struct {
	once     sync.Once
	open     atomic.Int64
	refused  prometheus.Counter
	stalled  prometheus.Counter
	capWaits prometheus.Counter

	refusedLog, stalledLog, capLog ratelog.Limiter

	mu     sync.Mutex
	perKey map[netip.Addr]int // client key (clientKey) -> connections open
}

func (s *Server) httpConns() *httpConnState {
	st := &s.httpConnState
	st.once.Do(func() {
		st.perKey = map[netip.Addr]int{}
		st.refused = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ramboot_http_connections_refused_total",
			Help: "HTTP connections closed at accept: their client address had --http-max-conns-per-client open already.",
		})
		st.stalled = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ramboot_http_stalled_total",
			Help: "HTTP connections closed because a response made no progress for --http-stall-timeout (the client stopped reading).",
		})
		st.capWaits = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ramboot_http_accept_waits_total",
			Help: "Times a new HTTP connection waited because --http-max-conns were open.",
		})
		s.Registry().MustRegister(st.refused, st.stalled, st.capWaits,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "ramboot_http_connections",
				Help: "HTTP connections open.",
			}, func() float64 { return float64(st.open.Load()) }))
	})
	return st
}

// clientKey is the address connections are counted under: an IPv4
// address, or an IPv6 address's /64 (one host may hold a whole /64).
func clientKey(a net.Addr) netip.Addr {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// httpListener wraps l with the Server's connection limits.
func (s *Server) httpListener(l net.Listener) net.Listener {
	return &limitedListener{
		Listener:  l,
		sem:       make(chan struct{}, positive(s.HTTPMaxConns, DefaultHTTPMaxConns)),
		perClient: positive(s.HTTPMaxConnsPerClient, DefaultHTTPMaxConnsPerClient),
		stall:     positive(s.HTTPStallTimeout, DefaultHTTPStallTimeout),
		st:        s.httpConns(),
		log:       s.log(),
		done:      make(chan struct{}),
	}
}

// limitedListener lets at most cap(sem) connections be open at once
// (Accept waits for one to close) and at most perClient from one client
// key (more are answered 503 and closed at once); its connections close
// when a write makes no progress for stall.
type limitedListener struct {
	net.Listener
	sem       chan struct{}
	perClient int
	stall     time.Duration
	st        *httpConnState
	log       *slog.Logger
	done      chan struct{}
	closeOnce sync.Once
}

// tooMany is the answer to a connection over the per-client limit, sent
// before any request is read (best effort: it is closed at once).
const tooMany = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nRetry-After: 5\r\nContent-Length: 57\r\n\r\ntoo many connections from your address: close some first\n"

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		default:
			l.st.capWaits.Inc()
			if h, ok := l.st.capLog.Allow(netip.Addr{}, time.Now()); ok {
				l.log.Warn("http: --http-max-conns connections open; new ones wait until one closes"+h.String(), "max", cap(l.sem))
			}
			select {
			case l.sem <- struct{}{}:
			case <-l.done:
				return nil, net.ErrClosed
			}
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		l.st.mu.Lock()
		n := l.st.perKey[key]
		ok := n < l.perClient
		if ok {
			l.st.perKey[key] = n + 1
		}
		l.st.mu.Unlock()
		if !ok {
			<-l.sem
			l.refuse(c, key, n)
			continue
		}
		l.st.open.Add(1)
		return &limitedConn{Conn: c, l: l, key: key}, nil
	}
}

// refuse answers a connection over the per-client limit and closes it.
func (l *limitedListener) refuse(c net.Conn, key netip.Addr, open int) {
	l.st.refused.Inc()
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	io.WriteString(c, tooMany)
	c.Close()
	if h, ok := l.st.refusedLog.Allow(key, time.Now()); ok {
		l.log.Warn("http: connection refused: client over --http-max-conns-per-client"+h.String(),
			"remote", c.RemoteAddr().String(), "open", open, "max", l.perClient)
	}
}

func (l *limitedListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// release gives back a closed connection's places.
func (l *limitedListener) release(key netip.Addr) {
	l.st.mu.Lock()
	if n := l.st.perKey[key]; n <= 1 {
		delete(l.st.perKey, key)
	} else {
		l.st.perKey[key] = n - 1
	}
	l.st.mu.Unlock()
	l.st.open.Add(-1)
	<-l.sem
}

// limitedConn is a connection of a limitedListener. Every write has a
// deadline of stall from its start, for at most stallChunk bytes; a
// write that runs into it ends the connection. ReadFrom keeps the
// underlying *net.TCPConn's sendfile path, a piece at a time.
type limitedConn struct {
	net.Conn
	l       *limitedListener
	key     netip.Addr
	once    sync.Once
	stalled atomic.Bool
}

// errStalled is the error of every write after one stalled.
var errStalled = errors.New("http: the client stopped reading for --http-stall-timeout")

func (c *limitedConn) Write(p []byte) (int, error) {
	if c.stalled.Load() {
		return 0, errStalled
	}
	n := 0
	for n < len(p) {
		end := min(len(p), n+stallChunk)
		c.Conn.SetWriteDeadline(time.Now().Add(c.l.stall))
		m, err := c.Conn.Write(p[n:end])
		n += m
		if err != nil {
			return n, c.writeErr(err)
		}
	}
	return n, nil
}

// ReadFrom sends r in pieces of stallChunk, each with its deadline. An
// *io.LimitedReader of an *os.File (what http.ServeContent hands over)
// stays one, so the piece goes out with sendfile.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if c.stalled.Load() {
		return 0, errStalled
	}
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{c}, r)
	}
	var total int64
	outer, limited := r.(*io.LimitedReader)
	for {
		piece := &io.LimitedReader{R: r, N: stallChunk}
		if limited {
			if outer.N <= 0 {
				return total, nil
			}
			piece.R, piece.N = outer.R, min(outer.N, stallChunk)
		}
		want := piece.N
		c.Conn.SetWriteDeadline(time.Now().Add(c.l.stall))
		n, err := rf.ReadFrom(piece)
		total += n
		if limited {
			outer.N -= n
		}
		if err != nil {
			return total, c.writeErr(err)
		}
		if n < want { // r ended
			return total, nil
		}
	}
}

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// writeErr notes a write that ran into the stall deadline: counted,
// logged once per client a minute, and the connection reset when closed
// (its unsent data dropped rather than kept by the kernel).
func (c *limitedConn) writeErr(err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) || !c.stalled.CompareAndSwap(false, true) {
		return err
	}
	c.l.st.stalled.Inc()
	if h, ok := c.l.st.stalledLog.Allow(c.key, time.Now()); ok {
		c.l.log.Warn("http: connection closed: the client stopped reading (a response made no progress for --http-stall-timeout)"+h.String(),
			"remote", c.RemoteAddr().String(), "timeout", c.l.stall.String())
	}
	return err
}

func (c *limitedConn) Close() error {
	if c.stalled.Load() {
		if tc, ok := c.Conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	}
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
