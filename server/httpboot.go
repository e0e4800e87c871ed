package server

// HTTP boot of the Pi 4, CM4 and Pi 5: their EEPROM bootloader, with
// HTTP_HOST set to this server, HTTP_PORT to serve's HTTP port and
// HTTP_PATH to the board's name, fetches
//
//	GET /rpi4/boot.sig
//	GET /rpi4/boot.img
//
// The builder writes both beside the board's files (the root of a
// one-board tree, <board dir>/ of a mixed one); a node whose nodes.yaml
// entry says http_boot: DIR gets the tree's DIR/boot.img and boot.sig. The bootloader follows no
// redirect (rpi-eeprom#475) and falls back to the next BOOT_ORDER mode
// (TFTP) on a 404, so these paths are answered before the ServeMux, which
// would send a 301 for an unclean path: every path whose cleaned last
// element is boot.img or boot.sig is answered here, 200 (206 for a range)
// or 404, never 3xx.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/ramboot/ramboot/eeprom"
	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/server/status"
	"github.com/ramboot/ramboot/tree"
)

// The files an EEPROM bootloader fetches over HTTP, and the types they
// are answered with. The types are set, never guessed: ServeContent would
// sniff, and Debian's mime table calls .sig application/pgp-signature.
const (
	bootImg = "boot.img"
	bootSig = "boot.sig"

	bootImgType = "application/octet-stream"
	bootSigType = "text/plain; charset=utf-8"
)

// isBootPath reports whether a request path is for a boot file: its last
// element, once cleaned, is boot.img or boot.sig. Such a request never
// reaches the ServeMux.
func isBootPath(p string) bool {
	b := path.Base(path.Clean("/" + p))
	return b == bootImg || b == bootSig
}

// splitBootPath splits "/<board>/boot.img" (or boot.sig) into the board's
// name and the file. Any other form is not one: an unclean path
// ("//rpi4/boot.img", "/rpi4/./boot.img"), more or fewer elements.
func splitBootPath(p string) (board, file string, ok bool) {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return "", "", false
	}
	board, file, ok = strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if !ok || board == "" || (file != bootImg && file != bootSig) {
		return "", "", false
	}
	return board, file, true
}

// bootBoard is the tree's board of that name.
func (s *Server) bootBoard(name string) (tree.Board, bool) {
	for _, b := range s.treeBoards() {
		if b.Name == name {
			return b, true
		}
	}
	return tree.Board{}, false
}

// nodeHTTPBoot is the http_boot directory the inventory gives the node
// with this MAC (and the serial DHCP saw with it), or "".
func (s *Server) nodeHTTPBoot(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return ""
	}
	serial := ""
	if n, ok := s.Board.Node(mac); ok {
		serial = n.Serial
	}
	m, ok, err := s.booter().Lookup(hw, serial, s.ServerIP)
	if err != nil || !ok {
		return ""
	}
	return m.HTTPBoot
}

// serveBoot answers a GET or HEAD of a boot path (isBootPath) with the
// board's boot.img or boot.sig (http.ServeContent: an exact
// Content-Length, ranges), or 404. Each request is logged once, with the
// MAC of the node at the client's address by the server's own evidence
// (nodeAt; "unknown" if none) and the User-Agent as the client's claim;
// a GET is recorded on that node's status record (the address's when no
// node is known): "boot.img fetch started", then "boot.img fetched", or
// "... aborted", "... failed", "... not found". A node whose inventory
// entry has http_boot: DIR gets DIR/boot.img and DIR/boot.sig whatever
// board the path names (and 404 if DIR lacks one: never the board's
// boot.sig beside another boot.img).
func (s *Server) serveBoot(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	ip := remoteIP(r.RemoteAddr)
	key := s.nodeAt(ip)
	mac := key
	if mac == "" {
		mac = "unknown"
	}
	agent := report.Clip(strings.ToValidUTF8(r.UserAgent(), "?"), 120)
	shown := report.Clip(strings.ToValidUTF8(r.URL.Path, "?"), 80)
	file := path.Base(path.Clean("/" + r.URL.Path))
	attrs := []any{"remote", r.RemoteAddr, "mac", mac, "method", r.Method, "path", shown}
	if key != "" {
		if n, ok := s.Board.Node(key); ok && n.Serial != "" {
			attrs = append(attrs, "serial", n.Serial)
		}
	}
	claim := ""
	if am := agentMAC(r.UserAgent()); am != "" && am != key {
		claim = "; the User-Agent names " + am + ", not this address's node"
	}
	if agent != "" {
		claim = "; User-Agent (claimed) " + strconv.Quote(agent) + claim
	}
	// The node's own directory (nodes.yaml http_boot), for a node known
	// by the server's evidence only.
	dir := ""
	if key != "" {
		dir = s.nodeHTTPBoot(key)
	}
	via := ""
	if dir != "" {
		via = " (nodes.yaml http_boot " + dir + ")"
		attrs = append(attrs, "http_boot", dir)
	}
	node := status.Node{IP: ip}
	if key == "" {
		key = "ip " + ip
	}
	record := func(stage, detail string) {
		if r.Method == http.MethodHead {
			return // a probe, not a fetch: logged only
		}
		s.Board.Record(key, node, file+" "+stage, report.Clip(detail+via+claim, maxDetail))
	}
	notFound := func(why string) {
		http.Error(w, why, http.StatusNotFound)
		s.log().Info("http-boot", append(attrs, "file", file, "status", http.StatusNotFound, "err", why, "agent", agent)...)
		record("not found", shown+": "+why)
	}

	boardName, _, ok := splitBootPath(r.URL.Path)
	if !ok {
		notFound("not a boot path: want /<board>/" + file + ", like /rpi4/" + file)
		return
	}
	attrs = append(attrs, "board", report.Clip(boardName, 40))
	served := path.Join(dir, file)
	if dir == "" {
		b, ok := s.bootBoard(boardName)
		if !ok {
			notFound("the tree has no board " + strconv.Quote(report.Clip(boardName, 40)))
			return
		}
		served = b.Path(file)
	}
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		http.Error(w, "tree unavailable", http.StatusInternalServerError)
		s.log().Error("http-boot", append(attrs, "file", file, "status", http.StatusInternalServerError, "err", err.Error())...)
		return
	}
	defer root.Close()
	f, err := root.Open(served)
	if err != nil {
		notFound("the tree has no " + served + " (build it with --http-boot)")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		notFound(served + " is not a file")
		return
	}

	typ := bootImgType
	if file == bootSig {
		typ = bootSigType
	}
	w.Header().Set("Content-Type", typ)
	rng := r.Header.Get("Range")
	started := fmt.Sprintf("%s: started (%d bytes", shown, st.Size())
	if rng != "" {
		started += ", range " + report.Clip(rng, 40)
	}
	if file == bootImg {
		record("fetch started", started+")")
	}

	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, file, st.ModTime(), f)
	d := time.Since(t0)
	code := cw.code
	if code == 0 {
		code = http.StatusOK
	}
	want, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64)
	if err != nil {
		want = -1
	}
	s.log().Info("http-boot", append(attrs, "file", file, "served", served, "status", code, "bytes", cw.n, "size", st.Size(),
		"range", rng, "duration", d.Round(time.Millisecond).String(), "agent", agent)...)

	switch {
	case code != http.StatusOK && code != http.StatusPartialContent:
		stage := "fetch failed"
		if code < 400 { // 304: the client has it already
			stage = "fetch ended"
		}
		record(stage, fmt.Sprintf("%s: HTTP %d %s", shown, code, http.StatusText(code)))
	case (want >= 0 && cw.n < want) || (want < 0 && cw.err != nil):
		why := cw.err
		if why == nil {
			why = r.Context().Err()
		}
		detail := fmt.Sprintf("%s: %d of %d bytes (stopped early)", shown, cw.n, want)
		if why != nil {
			detail = fmt.Sprintf("%s: %d of %d bytes (client gone: %v)", shown, cw.n, want, why)
		}
		record("fetch aborted", detail)
	default:
		rate := "-"
		if secs := d.Seconds(); secs > 0 {
			rate = fmt.Sprintf("%.1f", float64(cw.n)/1e6/secs)
		}
		detail := fmt.Sprintf("%s: %d bytes in %s (%s MB/s)", shown, cw.n, d.Round(time.Millisecond), rate)
		if code == http.StatusPartialContent {
			detail = fmt.Sprintf("%s: %d bytes of %d (range %s) in %s", shown, cw.n, st.Size(), report.Clip(rng, 40), d.Round(time.Millisecond))
		}
		record("fetched", detail)
	}
}

// bootImgVerdict compares the digest of the boot.img a node's bootloader
// verified (report.Report.BootImg, which the node's init read from its
// device tree) with the boot.img this server serves that node: its
// nodes.yaml http_boot directory's, else any board's of the tree. The
// digests compared are boot.sig's first lines, which is what the
// bootloader checks boot.img against. served says whether one matched;
// the words go on the node's status record.
func (s *Server) bootImgVerdict(mac, digest string) (verdict string, served bool) {
	short := digest[:16]
	var sigs []string
	if dir := s.nodeHTTPBoot(mac); dir != "" {
		sigs = []string{path.Join(dir, bootSig)}
	} else {
		for _, b := range s.treeBoards() {
			sigs = append(sigs, b.Path(bootSig))
		}
	}
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return "boot.img sha256 " + short + "... verified by the bootloader; the tree is unavailable to compare", false
	}
	defer root.Close()
	var other []string
	for _, p := range sigs {
		f, err := root.Open(p)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, 4096))
		f.Close()
		if err != nil {
			continue
		}
		sig, err := eeprom.ParseSig(b)
		if err != nil {
			other = append(other, p+" unreadable")
			continue
		}
		if sig.SHA256 == digest {
			return "boot.img sha256 " + short + "... verified by the bootloader: the served " + path.Join(path.Dir(p), bootImg), true
		}
		other = append(other, path.Join(path.Dir(p), bootImg)+" is "+sig.SHA256[:16]+"...")
	}
	if len(other) == 0 {
		return "boot.img sha256 " + short + "... verified by the bootloader: this server serves no boot.img to compare (build with --http-boot)", false
	}
	return "boot.img sha256 " + short + "... verified by the bootloader is NOT one this server serves (" + strings.Join(other, ", ") + ")", false
}
