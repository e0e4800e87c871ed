package tftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/server/internal/ratelog"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultMaxBlockSize = 1468 // 1500-byte Ethernet MTU minus IP, UDP and TFTP headers
	DefaultTimeout      = time.Second
	DefaultRetries      = 5
	DefaultMaxWindow    = 64
	// DefaultMaxTransfers and DefaultMaxTransfersPerClient bound the
	// transfers in flight, in all and per client IP address. 500 from one
	// address is what a load generator standing in for a rack (TestLoad,
	// e2e's BenchmarkTFTPConcurrent) needs; a real node runs one at a time.
	DefaultMaxTransfers          = 1000
	DefaultMaxTransfersPerClient = 500
	// DefaultMaxTimeout is the largest "timeout" option (RFC 2349) granted:
	// a stalled transfer then ends after at most (Retries+1) × 10 s.
	DefaultMaxTimeout = 10 * time.Second
)

// ErrServerClosed is returned by Serve and ListenAndServe after Close or
// Shutdown.
var ErrServerClosed = errors.New("tftp: server closed")

// errReadOnly is the Err of the Event logged for a write request.
var errReadOnly = errors.New("write request refused: read-only server")

// Event kinds.
const (
	KindServed         = "served"
	KindNotFound       = "not-found"
	KindEarlyTerminate = "early-terminate"
	KindError          = "error"
	// KindRefused: a request over MaxTransfers or MaxTransfersPerClient,
	// answered with ERROR 0 and logged once per client address a minute.
	KindRefused = "refused"
)

// Event describes one finished request (or one bad packet on the listening
// socket). Log receives exactly one Event per request served; a request
// refused for a limit, and a packet on the listening socket that is no
// request, are logged at most once per client address a minute each (Err
// tells how many more were not logged), and a repeated request for a
// transfer still running (same client address, port and file) is dropped
// without an Event.
type Event struct {
	Remote     net.Addr
	Path       string // the file name as requested
	Resolved   string // the file opened, when it got that far
	Bytes      int64  // bytes the client acknowledged
	Duration   time.Duration
	BlockSize  int // negotiated (512 without options)
	WindowSize int // negotiated (1 without options)
	Err        error
	// EarlyTerminate is set when the client ended the transfer with an
	// ERROR before acknowledging any data: the Raspberry Pi's way of asking
	// "does this file exist, and how big is it?". Not an error.
	EarlyTerminate bool
	Kind           string // KindServed, KindNotFound, KindEarlyTerminate or KindError
}

// String renders the event as one log line.
func (e Event) String() string {
	s := fmt.Sprintf("tftp %s %s %q", e.Kind, addrString(e.Remote), e.Path)
	if e.Resolved != "" {
		s += " -> " + e.Resolved
	}
	if e.Kind == KindServed || e.Bytes > 0 {
		s += fmt.Sprintf(" %d bytes in %v", e.Bytes, e.Duration.Round(time.Millisecond))
		if e.Duration > 0 {
			s += fmt.Sprintf(" (%.1f MB/s)", float64(e.Bytes)/e.Duration.Seconds()/1e6)
		}
	}
	if e.BlockSize != 0 {
		s += fmt.Sprintf(" blksize=%d windowsize=%d", e.BlockSize, e.WindowSize)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func addrString(a net.Addr) string {
	if a == nil {
		return "-"
	}
	return a.String()
}

// Server is a read-only TFTP server. The zero value serves nothing (no
// Root); set Root or Resolve. Fields must not change once Serve runs.
type Server struct {
	// Root is the directory files are served from. Requests never leave
	// it (see the package documentation for the rules).
	Root string
	// Resolve, if set, maps a request to the file to serve. It gets the
	// requested name already cleaned and checked (relative, no ".."
	// component, no control character) and returns either a path relative
	// to Root, which is opened with the same confinement, or an absolute
	// path, which is opened as is (the hook is then responsible for it).
	// An error wrapping fs.ErrNotExist is answered "file not found",
	// fs.ErrPermission "access violation", anything else ERROR 0. It is
	// called concurrently.
	Resolve func(remote net.Addr, path string) (string, error)
	// Log receives one Event per request. It is called concurrently; nil
	// is silent.
	Log func(Event)
	// MaxBlockSize caps the blksize option (RFC 2348). Zero means
	// DefaultMaxBlockSize; at most 65464 is honoured.
	MaxBlockSize int
	// Timeout is the retransmission timeout when the client sends no
	// "timeout" option (RFC 2349). Zero means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many retransmissions of the same packet are made
	// before a transfer is abandoned. Zero means DefaultRetries.
	Retries int
	// MaxWindow caps the windowsize option (RFC 7440). Zero means
	// DefaultMaxWindow. A transfer holds one packet buffer whatever the
	// window (4 + min(blksize, file size) bytes).
	MaxWindow int
	// MaxTransfers caps the transfers in flight; a request over it is
	// answered with ERROR 0. Zero means DefaultMaxTransfers.
	MaxTransfers int
	// MaxTransfersPerClient caps the transfers in flight per client IP
	// address. Zero means DefaultMaxTransfersPerClient.
	MaxTransfersPerClient int
	// MaxTimeout is the largest "timeout" option granted; a larger one is
	// left out of the OACK (RFC 2349 lets the server only accept or
	// ignore it) and Timeout applies. Zero means DefaultMaxTimeout.
	MaxTimeout time.Duration
	// OnRefuse, if set, is called for every request refused for
	// MaxTransfers or MaxTransfersPerClient, logged or not (Log sees at
	// most one a minute per client). It is called from the listener's
	// loop and must return quickly.
	OnRefuse func()
	// Held, if set, sees the malformed-packet events held back from Log
	// (Log sees at most one a minute per client address), so that counters
	// stay exact. It is called from the listener's loop and must return
	// quickly.
	Held func(Event)

	mu        sync.Mutex
	closed    bool // no new requests (Close or Shutdown)
	aborted   bool // transfers are aborted (Close)
	listeners map[net.PacketConn]struct{}
	active    map[*net.UDPConn]struct{}
	inflight  sync.WaitGroup
	running   map[transferKey]struct{} // requests being served
	perClient map[netip.Addr]int       // transfers in flight per client address
	refusals  ratelog.Limiter          // refused requests: logged once per client a minute
	malformed ratelog.Limiter          // packets that are no request: the same

	onTransferEnd func(*transfer) // tests: sees each transfer once it ended
}

// transferKey identifies a request: a repeated RRQ (the client's
// retransmission while the OACK or DATA 1 is on its way) has the same one.
type transferKey struct {
	remote netip.AddrPort
	file   string
}

func (s *Server) maxBlockSize() int {
	switch n := s.MaxBlockSize; {
	case n <= 0:
		return DefaultMaxBlockSize
	case n < minBlockSize:
		return minBlockSize
	case n > maxBlockSize:
		return maxBlockSize
	default:
		return n
	}
}

func (s *Server) maxWindow() int {
	switch n := s.MaxWindow; {
	case n <= 0:
		return DefaultMaxWindow
	case n > maxWindowSize:
		return maxWindowSize
	default:
		return n
	}
}

func (s *Server) maxTransfers() int {
	if s.MaxTransfers <= 0 {
		return DefaultMaxTransfers
	}
	return s.MaxTransfers
}

func (s *Server) maxTransfersPerClient() int {
	if s.MaxTransfersPerClient <= 0 {
		return DefaultMaxTransfersPerClient
	}
	return s.MaxTransfersPerClient
}

func (s *Server) maxTimeout() time.Duration {
	if s.MaxTimeout <= 0 {
		return DefaultMaxTimeout
	}
	return s.MaxTimeout
}

func (s *Server) timeout() time.Duration {
	if s.Timeout <= 0 {
		return DefaultTimeout
	}
	return s.Timeout
}

func (s *Server) retries() int {
	if s.Retries <= 0 {
		return DefaultRetries
	}
	return s.Retries
}

func (s *Server) log(e Event) {
	if s.Log != nil {
		s.Log(e)
	}
}

// ListenAndServe listens on the UDP address addr ("127.0.0.1:6969",
// "192.0.2.10:69") and serves on it until Close or Shutdown. Binding port
// 69 needs CAP_NET_BIND_SERVICE.
func (s *Server) ListenAndServe(addr string) error {
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	return s.Serve(conn)
}

// Serve reads requests from conn and answers each from its own UDP socket
// bound to the local address the request came to (RFC 1350's transfer
// identifiers). When conn is a *net.UDPConn bound to a wildcard address, the
// request's destination address is learnt from IP_PKTINFO/IPV6_PKTINFO.
// Bad packets are logged and skipped; Serve returns only when reading conn
// fails, or ErrServerClosed after Close or Shutdown. conn is closed on
// return.
func (s *Server) Serve(conn net.PacketConn) error {
	if !s.addListener(conn) {
		conn.Close()
		return ErrServerClosed
	}
	defer s.removeListener(conn)
	defer conn.Close()

	uc, _ := conn.(*net.UDPConn)
	var fixedLocal *net.UDPAddr
	if la, ok := conn.LocalAddr().(*net.UDPAddr); ok && !la.IP.IsUnspecified() {
		fixedLocal = &net.UDPAddr{IP: la.IP, Zone: la.Zone}
	}
	pktinfo := uc != nil && fixedLocal == nil && enablePktinfo(uc)

	buf := make([]byte, 64<<10)
	oob := make([]byte, 256)
	for {
		var (
			n      int
			remote *net.UDPAddr
			local  = fixedLocal
			err    error
		)
		if pktinfo {
			var oobn int
			var ap netip.AddrPort
			n, oobn, _, ap, err = uc.ReadMsgUDPAddrPort(buf, oob)
			if err == nil {
				remote = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
				local = pktinfoLocal(oob[:oobn])
			}
		} else {
			var a net.Addr
			n, a, err = conn.ReadFrom(buf)
			if err == nil {
				var ok bool
				if remote, ok = a.(*net.UDPAddr); !ok {
					remote, err = net.ResolveUDPAddr("udp", a.String())
					if err != nil {
						s.log(Event{Kind: KindError, Err: fmt.Errorf("bad peer address %v: %w", a, err)})
						continue
					}
				}
			}
		}
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			return fmt.Errorf("tftp: reading requests: %w", err)
		}
		start := time.Now()
		req, err := parseRequest(buf[:n])
		if err != nil {
			ev := Event{Remote: remote, Kind: KindError, Err: err}
			if held, ok := s.malformed.Allow(remote.AddrPort().Addr().Unmap(), start); ok {
				if held != (ratelog.Held{}) {
					ev.Err = fmt.Errorf("%w%s", err, held)
				}
				s.log(ev)
			} else if s.Held != nil {
				s.Held(ev)
			}
			if n >= 2 && (buf[1] == byte(opRRQ) || buf[1] == byte(opWRQ)) && buf[0] == 0 {
				conn.WriteTo(appendError(nil, errIllegalOp, "malformed request"), remote)
			}
			continue
		}
		key := transferKey{remote: remote.AddrPort(), file: req.Filename}
		key.remote = netip.AddrPortFrom(key.remote.Addr().Unmap(), key.remote.Port())
		refused, closed := s.startTransfer(key)
		switch {
		case closed:
			return ErrServerClosed
		case refused == errDuplicate:
			continue
		case refused != nil:
			conn.WriteTo(appendError(nil, errUndefined, "server busy: "+refused.Error()+"; try again later"), remote)
			if s.OnRefuse != nil {
				s.OnRefuse()
			}
			if held, ok := s.refusals.Allow(key.remote.Addr(), start); ok {
				err := refused
				if held != (ratelog.Held{}) {
					err = fmt.Errorf("%w%s", refused, held)
				}
				s.log(Event{Remote: remote, Path: req.Filename, Kind: KindRefused, Err: err})
			}
			continue
		}
		go s.handle(local, remote, req, key, start)
	}
}

// Close stops the listeners and aborts the transfers in flight; it returns
// once their goroutines have ended.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed, s.aborted = true, true
	err := s.closeListenersLocked()
	for c := range s.active {
		c.Close()
	}
	s.mu.Unlock()
	s.inflight.Wait()
	return err
}

// Shutdown stops the listeners and waits for the transfers in flight to
// end. If ctx ends first, the remaining transfers are aborted as by Close
// and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	err := s.closeListenersLocked()
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

func (s *Server) closeListenersLocked() error {
	var errs []error
	for c := range s.listeners {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) addListener(c net.PacketConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.listeners == nil {
		s.listeners = map[net.PacketConn]struct{}{}
	}
	s.listeners[c] = struct{}{}
	return true
}

func (s *Server) removeListener(c net.PacketConn) {
	s.mu.Lock()
	delete(s.listeners, c)
	s.mu.Unlock()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

var (
	errDuplicate       = errors.New("duplicate request")
	errTooMany         = errors.New("too many transfers")
	errTooManyByClient = errors.New("too many transfers from this address")
)

// startTransfer registers a request about to be served, unless the server
// is closed, the same request is being served (errDuplicate) or a limit is
// reached. endTransfer undoes it.
func (s *Server) startTransfer(key transferKey) (refused error, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, true
	}
	if _, ok := s.running[key]; ok {
		return errDuplicate, false
	}
	if len(s.running) >= s.maxTransfers() {
		return fmt.Errorf("%w (limit %d)", errTooMany, s.maxTransfers()), false
	}
	client := key.remote.Addr()
	if s.perClient[client] >= s.maxTransfersPerClient() {
		return fmt.Errorf("%w (limit %d)", errTooManyByClient, s.maxTransfersPerClient()), false
	}
	if s.running == nil {
		s.running = map[transferKey]struct{}{}
		s.perClient = map[netip.Addr]int{}
	}
	s.running[key] = struct{}{}
	s.perClient[client]++
	s.inflight.Add(1)
	return nil, false
}

func (s *Server) endTransfer(key transferKey) {
	s.mu.Lock()
	delete(s.running, key)
	client := key.remote.Addr()
	if s.perClient[client] <= 1 {
		delete(s.perClient, client)
	} else {
		s.perClient[client]--
	}
	s.mu.Unlock()
	s.inflight.Done()
}

func (s *Server) addActive(c *net.UDPConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborted {
		return false
	}
	if s.active == nil {
		s.active = map[*net.UDPConn]struct{}{}
	}
	s.active[c] = struct{}{}
	return true
}

func (s *Server) removeActive(c *net.UDPConn) {
	s.mu.Lock()
	delete(s.active, c)
	s.mu.Unlock()
}

// handle runs one request to its end and logs it.
func (s *Server) handle(local, remote *net.UDPAddr, req *request, key transferKey, start time.Time) {
	defer s.endTransfer(key)
	ev := Event{Remote: remote, Path: req.Filename}
	defer func() {
		ev.Duration = time.Since(start)
		s.log(ev)
	}()
	conn, err := net.DialUDP("udp", local, remote)
	if err != nil && local != nil {
		// Say a subnet broadcast from IP_PKTINFO: let the kernel choose.
		conn, err = net.DialUDP("udp", nil, remote)
	}
	if err != nil {
		ev.Kind, ev.Err = KindError, fmt.Errorf("opening transfer socket: %w", err)
		return
	}
	defer conn.Close()
	if !s.addActive(conn) {
		ev.Kind, ev.Err = KindError, ErrServerClosed
		return
	}
	defer s.removeActive(conn)

	if req.Op == opWRQ {
		conn.Write(appendError(nil, errAccess, "access violation (read-only server)"))
		ev.Kind, ev.Err = KindError, errReadOnly
		return
	}
	f, resolved, err := s.open(remote, req.Filename)
	ev.Resolved = resolved
	if err != nil {
		code, msg, kind := errorReply(err)
		conn.Write(appendError(nil, code, msg))
		ev.Kind, ev.Err = kind, err
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		conn.Write(appendError(nil, errUndefined, "cannot read file"))
		ev.Kind, ev.Err = KindError, err
		return
	}
	p, oack := s.negotiate(req, st.Size())
	ev.BlockSize, ev.WindowSize = p.blksize, p.window
	t := &transfer{
		conn:    conn,
		file:    f,
		size:    st.Size(),
		blksize: p.blksize,
		window:  p.window,
		timeout: p.timeout,
		retries: s.retries(),
	}
	err = t.run(oack)
	ev.Bytes = t.acked
	if s.onTransferEnd != nil {
		s.onTransferEnd(t)
	}
	var rerr *readError
	if errors.As(err, &rerr) {
		conn.Write(appendError(nil, errUndefined, "cannot read file"))
	}
	switch {
	case err == nil:
		ev.Kind = KindServed
	case errors.Is(err, errEarlyTerminate):
		ev.Kind, ev.EarlyTerminate = KindEarlyTerminate, true
	default:
		ev.Kind, ev.Err = KindError, err
	}
}

// open resolves and opens the requested file.
func (s *Server) open(remote net.Addr, name string) (*os.File, string, error) {
	rel, err := cleanPath(name)
	if err != nil {
		return nil, "", err
	}
	target := rel
	if s.Resolve != nil {
		if target, err = s.Resolve(remote, rel); err != nil {
			return nil, "", err
		}
	}
	if filepath.IsAbs(target) {
		f, err := os.OpenFile(target, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
		if err != nil {
			return nil, target, err
		}
		f, err = checkRegular(f)
		return f, target, err
	}
	if s.Root == "" {
		return nil, "", fmt.Errorf("%q: %w (Server.Root is not set)", target, fs.ErrNotExist)
	}
	target = filepath.Clean(target)
	full := filepath.Join(s.Root, target)
	if !filepath.IsLocal(target) {
		return nil, full, &fs.PathError{Op: "open", Path: full, Err: errOutsideRoot}
	}
	f, err := openBeneath(s.Root, target, true)
	return f, full, err
}

// errorReply maps an open error to the TFTP error sent and the Event kind.
// The message never carries server-side paths.
func errorReply(err error) (uint16, string, string) {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		return errNotFound, "file not found", KindNotFound
	case errors.Is(err, errBadPath), errors.Is(err, errOutsideRoot), errors.Is(err, errNotRegular),
		errors.Is(err, fs.ErrPermission), errors.Is(err, unix.ELOOP):
		return errAccess, "access violation", KindError
	default:
		return errUndefined, "cannot open file", KindError
	}
}

type params struct {
	blksize, window int
	timeout         time.Duration
}

// negotiate applies the request's options (RFC 2347-2349, 7440) and returns
// the OACK options to send, in the order the client sent them; none means
// no OACK. Unknown options and bad values are ignored.
func (s *Server) negotiate(req *request, size int64) (params, []option) {
	p := params{blksize: defaultBlockSize, window: 1, timeout: s.timeout()}
	var oack []option
	for _, o := range req.Options {
		n, err := strconv.ParseInt(o.Value, 10, 64)
		if err != nil {
			continue
		}
		switch o.Name {
		case "blksize":
			if n < minBlockSize {
				continue
			}
			p.blksize = int(min(n, int64(s.maxBlockSize())))
			oack = append(oack, option{o.Name, strconv.Itoa(p.blksize)})
		case "tsize":
			oack = append(oack, option{o.Name, strconv.FormatInt(size, 10)})
		case "timeout":
			if n < 1 || n > maxTimeoutOption || time.Duration(n)*time.Second > s.maxTimeout() {
				continue // not granted: left out of the OACK, Timeout applies
			}
			p.timeout = time.Duration(n) * time.Second
			oack = append(oack, option{o.Name, o.Value})
		case "windowsize":
			if n < 1 || n > maxWindowSize {
				continue
			}
			p.window = int(min(n, int64(s.maxWindow())))
			oack = append(oack, option{o.Name, strconv.Itoa(p.window)})
		}
	}
	return p, oack
}
