package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/server/status"
)

// HTTP limits, the defaults of the Server fields of the same names.
const (
	// DefaultHTTPHeaderTimeout bounds reading a request's header.
	DefaultHTTPHeaderTimeout = 10 * time.Second
	// DefaultHTTPIdleTimeout closes a keep-alive connection idle that
	// long.
	DefaultHTTPIdleTimeout = 60 * time.Second
	// DefaultHTTPMaxHeaderBytes bounds a request's header (iPXE, curl and
	// browsers send well under 2 kB).
	DefaultHTTPMaxHeaderBytes = 32 << 10
	// DefaultHTTPMaxConns bounds the connections open at once; more wait
	// in the listen backlog until one closes. The per-client bound and
	// the stall timeout are in httplimit.go.
	DefaultHTTPMaxConns = 1000
)

func positive[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// httpServer is the HTTP server with its limits. There is no ReadTimeout
// and no WriteTimeout: root images take minutes to download, and a
// ReadTimeout runs out during a long response too (it cancels the request's
// context). Every request is bounded anyway: its header by
// HTTPHeaderTimeout and HTTPMaxHeaderBytes, a request with a body, which
// nothing here takes but reports, is refused without reading the body,
// and the listener (httpListener) bounds the connections per client and
// ends a response that makes no progress for HTTPStallTimeout.
func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: positive(s.HTTPHeaderTimeout, DefaultHTTPHeaderTimeout),
		IdleTimeout:       positive(s.HTTPIdleTimeout, DefaultHTTPIdleTimeout),
		MaxHeaderBytes:    positive(s.HTTPMaxHeaderBytes, DefaultHTTPMaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(s.log().Handler(), slog.LevelDebug),
	}
}

// Handler serves the tree (with range requests), the Pi HTTP boot files
// (/<board>/boot.img and boot.sig, never redirected), the per-node iPXE
// scripts, the status page and the metrics, to GET and HEAD requests
// without a body; and takes the nodes' reports (POST /report, a small
// body).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/status", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.refreshStatusFiles()
		s.Board.ServeHTTP(w, r)
	}))
	mux.Handle("/status.json", &s.Board)
	mux.Handle(MetricsPath, s.metrics().handler)
	mux.HandleFunc("/boot/", s.serveScript)
	mux.HandleFunc("/", s.serveFile)
	return s.countHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == report.Path {
			s.serveReport(w, r)
			return
		}
		if r.URL.Path == report.FactsPath {
			s.serveFacts(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			refuse(w, http.StatusMethodNotAllowed, "GET or HEAD only")
			return
		}
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			refuse(w, http.StatusRequestEntityTooLarge, "no request body is taken")
			return
		}
		// Before the mux, which redirects unclean paths: an EEPROM
		// bootloader follows no redirect (httpboot.go).
		if isBootPath(r.URL.Path) {
			s.serveBoot(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

// refuse answers an error and closes the connection without reading a
// request body, which a slow client could otherwise dribble forever.
func refuse(w http.ResponseWriter, code int, msg string) {
	http.NewResponseController(w).SetReadDeadline(time.Now())
	w.Header().Set("Connection", "close")
	if code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, HEAD")
	}
	http.Error(w, msg, code)
}

// serveFile serves a file of the tree. os.Root keeps every lookup inside
// the tree, symlinks included.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		http.Error(w, "tree unavailable", http.StatusInternalServerError)
		return
	}
	defer root.Close()
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "."
	}
	f, err := root.Open(name)
	if err != nil {
		http.NotFound(w, r)
		s.log().Info("http", "remote", r.RemoteAddr, "path", r.URL.Path, "status", 404)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	t0 := time.Now()
	if isImage(name) && r.Method != http.MethodHead {
		gen := ""
		// A channel (tree/images) is a link to a generation: the board
		// says which one this node got.
		if target, err := root.Readlink(name); err == nil && !strings.Contains(target, "/") {
			gen = report.Clip(target, 80)
		}
		s.serveImage(w, r, name, gen, st, f)
		return
	}
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
	s.log().Info("http", "remote", r.RemoteAddr, "path", r.URL.Path, "bytes", st.Size(), "range", r.Header.Get("Range"), "duration", time.Since(t0).Round(time.Millisecond).String())
}

// isImage tells a root image under images/ (hundreds of MB, worth a
// line on the status board) from the small files beside it.
func isImage(name string) bool {
	return strings.HasPrefix(name, "images/") && !strings.HasSuffix(name, ".sha256")
}

// maxDetail bounds a status detail: the name and range come from the client.
const maxDetail = 200

// serveImage serves a root image with http.ServeContent (ranges keep
// working) and records on the status board, under the node at the
// client's IP by the server's own evidence (nodeAt), when the download
// starts and how it ends, and gen (the generation a channel's link named,
// "debian@ID.squashfs", or ""), the node's generation once it has it
// whole. The MAC ramboot's init names in its User-Agent
// ("ramboot-init (mac=...)") is shown when it differs, never believed:
// any client can send it.
func (s *Server) serveImage(w http.ResponseWriter, r *http.Request, name, gen string, st os.FileInfo, f *os.File) {
	ip := remoteIP(r.RemoteAddr)
	key := s.nodeAt(ip)
	claim := ""
	if mac := agentMAC(r.UserAgent()); mac != "" && mac != key {
		claim = "; the User-Agent names " + mac + ", not this address's node"
	}
	if key == "" {
		key = "ip " + ip
	}
	node := status.Node{IP: ip}
	shown := report.Clip(name, 120)
	started := fmt.Sprintf("%s: started (%d bytes", shown, st.Size())
	rng := r.Header.Get("Range")
	if rng != "" {
		started += ", range " + report.Clip(rng, 40)
	}
	genNote := ""
	if gen != "" {
		genNote = "; generation " + gen
	}
	s.Board.Record(key, node, "image download", report.Clip(started+claim+")"+genNote, maxDetail))

	t0 := time.Now()
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, st.Name(), st.ModTime(), f)
	d := time.Since(t0)
	code := cw.code
	if code == 0 {
		code = http.StatusOK
	}
	want, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64)
	if err != nil {
		want = -1
	}
	s.log().Info("http", "remote", r.RemoteAddr, "path", r.URL.Path, "status", code, "bytes", cw.n, "size", st.Size(),
		"range", rng, "duration", d.Round(time.Millisecond).String(), "node", key)

	var stage, detail string
	switch {
	case code != http.StatusOK && code != http.StatusPartialContent:
		stage, detail = "image download failed", fmt.Sprintf("%s: HTTP %d %s", shown, code, http.StatusText(code))
		if code < 400 { // 304: the client has it already
			stage = "image download ended"
		}
	case (want >= 0 && cw.n < want) || (want < 0 && cw.err != nil):
		why := cw.err
		if why == nil {
			why = r.Context().Err()
		}
		stage = "image download aborted"
		if why != nil {
			detail = fmt.Sprintf("%s: %d of %d bytes (client gone: %v)", shown, cw.n, want, why)
		} else {
			detail = fmt.Sprintf("%s: %d of %d bytes (stopped early)", shown, cw.n, want)
		}
	default:
		secs := d.Seconds()
		rate := "-"
		if secs > 0 {
			rate = fmt.Sprintf("%.1f", float64(cw.n)/1e6/secs)
		}
		stage = "image downloaded"
		detail = fmt.Sprintf("%s: %d bytes in %s (%s MB/s)", shown, cw.n, d.Round(time.Millisecond), rate)
		node.Generation = gen
	}
	s.Board.Record(key, node, stage, report.Clip(detail+genNote, maxDetail))
}

// agentMAC is the MAC in a User-Agent like "ramboot-init (mac=52:54:00:12:34:56)",
// normalised as the board keys it, or "".
func agentMAC(ua string) string {
	_, rest, ok := strings.Cut(ua, "mac=")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, ") ;"); i >= 0 {
		rest = rest[:i]
	}
	mac, err := net.ParseMAC(rest)
	if err != nil {
		return ""
	}
	return mac.String()
}

// remoteIP is the address of a request's client, without the port, an
// IPv4 address in IPv6 clothing unwrapped.
func remoteIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return host
}

// countingWriter counts the body bytes written through it and keeps the
// status and the first write error. ReadFrom keeps the server's
// sendfile path for files.
type countingWriter struct {
	http.ResponseWriter
	n    int64
	code int
	err  error
}

func (c *countingWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := c.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{c}, src)
	}
	if c.code == 0 {
		c.code = http.StatusOK
	}
	n, err := rf.ReadFrom(src)
	c.n += n
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// Flush forwards to the underlying writer when it can flush.
func (c *countingWriter) Flush() {
	if fl, ok := c.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// serveScript renders /boot/<mac>.ipxe: the tree's kernel and initramfs
// with the node's option 224 on the kernel command line.
func (s *Server) serveScript(w http.ResponseWriter, r *http.Request) {
	mac, ok := macFromPath(r.URL.Path)
	if !ok {
		http.Error(w, "want /boot/<mac>.ipxe, like /boot/dc-a6-32-01-36-c2.ipxe", http.StatusNotFound)
		return
	}
	server := s.ServerIP
	if h, _, err := net.SplitHostPort(r.Host); err == nil && net.ParseIP(h) != nil {
		server = net.ParseIP(h)
	}
	m, found, err := s.booter().Lookup(mac, "", server)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	arch := r.URL.Query().Get("arch")
	b, ok := s.boardFor(arch)
	if !ok {
		msg := "this tree has no board to boot: build one with `make image BOARD=pc` (x86) or BOARD=rpi4"
		if arch != "" {
			msg = fmt.Sprintf("this tree has no %s board: add one to the build (BOARD=pc for x86 PCs)", arch)
		}
		http.Error(w, msg, http.StatusNotFound)
		s.log().Error("http", "remote", r.RemoteAddr, "path", r.URL.Path, "err", msg)
		return
	}
	cmdline := ""
	if data, err := os.ReadFile(filepath.Join(s.Root, b.Path("cmdline.txt"))); err == nil {
		cmdline = strings.TrimSpace(string(data))
	}
	args, err := bootspec.KernelArgs(m.Option224, m.Hostname)
	if err != nil {
		msg := fmt.Sprintf("node %s (nodes.yaml line %d): %v", mac, m.Line, err)
		http.Error(w, msg, http.StatusInternalServerError)
		s.log().Error("http", "remote", r.RemoteAddr, "path", r.URL.Path, "err", msg)
		return
	}
	base := "http://" + r.Host
	for _, a := range []string{args, report.CmdlineParam + "=" + base + report.Path} {
		if a != "" {
			cmdline = strings.TrimSpace(cmdline + " " + a)
		}
	}
	fmt.Fprintf(w, "#!ipxe\n# ramboot: node %s, board %s", mac, b.Name)
	if found && m.Line > 0 {
		fmt.Fprintf(w, " (nodes.yaml line %d)", m.Line)
	}
	fmt.Fprintf(w, "\n%s", bootspec.IPXE(base+"/"+b.Path(b.Kernel), base+"/"+b.Path("rootfs.cpio.gz"), cmdline))
	s.log().Info("http", "remote", r.RemoteAddr, "path", r.URL.Path, "mac", mac.String(), "event", "ipxe-script")
	// The script is shown on the node it is for; the MAC is in the URL,
	// which any client may ask for, so a request from an address that is
	// not that node's says so (it ties nothing to the node).
	shown := r.URL.Path
	if ip := remoteIP(r.RemoteAddr); s.nodeAt(ip) != mac.String() {
		shown += " (asked from " + ip + ", not this node's address)"
	}
	s.Board.Record(mac.String(), status.Node{MAC: mac.String(), Hostname: m.Hostname}, "ipxe script", report.Clip(shown, maxDetail))
}
