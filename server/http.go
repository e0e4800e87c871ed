package server

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ramboot/ramboot/server/status"
)

// Handler serves the tree (with range requests), the per-node iPXE
// scripts and the status page.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/status", &s.Board)
	mux.Handle("/status.json", &s.Board)
	mux.HandleFunc("/boot/", s.serveScript)
	mux.HandleFunc("/", s.serveFile)
	return mux
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
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
	s.log().Info("http", "remote", r.RemoteAddr, "path", r.URL.Path, "bytes", st.Size(), "range", r.Header.Get("Range"), "duration", time.Since(t0).Round(time.Millisecond).String())
}

// cmdlineQuote quotes a kernel command-line value that has spaces.
func cmdlineQuote(v string) string {
	if strings.ContainsAny(v, " \t") {
		return `"` + strings.ReplaceAll(v, `"`, "") + `"`
	}
	return v
}

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
	m, found, err := s.inventory().Lookup(mac, "", server)
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
	if data, err := os.ReadFile(filepath.Join(s.Root, b.path("cmdline.txt"))); err == nil {
		cmdline = strings.TrimSpace(string(data))
	}
	next := m.Option224
	if strings.Contains(next, "/boot/") && strings.Contains(next, ".ipxe") {
		next = "shell" // the script must not point the next kernel back at itself
	}
	if next != "" {
		cmdline += " ramboot.224=" + cmdlineQuote(next)
	}
	if m.Hostname != "" {
		cmdline += " ramboot.hostname=" + m.Hostname
	}
	base := "http://" + r.Host
	fmt.Fprintf(w, "#!ipxe\n# ramboot: node %s, board %s", mac, b.Name)
	if found && m.Line > 0 {
		fmt.Fprintf(w, " (nodes.yaml line %d)", m.Line)
	}
	// initrd= names the initramfs for the kernel's EFI stub under UEFI
	// (iPXE on x86 or arm64 UEFI); elsewhere it is an unused parameter.
	fmt.Fprintf(w, "\nkernel %s/%s %s initrd=rootfs.cpio.gz\ninitrd %s/%s\nboot\n",
		base, b.path(b.Kernel), cmdline, base, b.path("rootfs.cpio.gz"))
	s.log().Info("http", "remote", r.RemoteAddr, "path", r.URL.Path, "mac", mac.String(), "event", "ipxe-script")
	s.Board.Record(mac.String(), status.Node{MAC: mac.String(), Hostname: m.Hostname}, "ipxe script", r.URL.Path)
}
