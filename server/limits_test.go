package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/netnstest"
	"github.com/ramboot/ramboot/internal/testenv"
	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/server/status"
	"github.com/ramboot/ramboot/server/tftp"
)

// The inventory's nodes stay on the status board whatever else clients
// make up; the others are bounded.
func TestBoardPinsInventory(t *testing.T) {
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.yaml")
	yaml := "nodes:\n  - mac: DC-A6-32-01-36-C2\n    hostname: pi-1\n  - serial: 9FFEFDEF\n    hostname: pi-2\n"
	if err := os.WriteFile(nodes, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Root: dir, Nodes: nodes, Log: slog.New(slog.DiscardHandler)}
	s.Board.MaxOthers = 10
	s.tftpLog(tftpEvent("10.0.0.5:1000", "9ffefdef/start4.elf"))
	s.Board.Record("dc:a6:32:01:36:c2", status.Node{MAC: "dc:a6:32:01:36:c2"}, "dhcp offer", "")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		s.tftpLog(tftpEvent("10.0.0.66:1000", fmt.Sprintf("%08x/%s", i, strings.Repeat("x", 1000))))
	}
	if n := s.Board.Len(); n != 12 {
		t.Errorf("board holds %d nodes, want the 2 of the inventory and 10 others", n)
	}
	seen := map[string]bool{}
	for _, n := range s.Board.Nodes() {
		seen[n.MAC+"/"+n.Serial] = true
		if len(n.Detail) > 200 {
			t.Errorf("detail of %d bytes", len(n.Detail))
		}
	}
	if !seen["dc:a6:32:01:36:c2/"] || !seen["/9ffefdef"] {
		t.Errorf("inventory nodes dropped: %v", seen)
	}
}

func tftpEvent(remote, path string) tftp.Event {
	a, _ := net.ResolveUDPAddr("udp4", remote)
	return tftp.Event{Remote: a, Path: path, Kind: tftp.KindNotFound}
}

// HTTP: a slow header is cut at HTTPHeaderTimeout, a request with a body is
// refused without reading it, and at most HTTPMaxConns connections are
// served at once.
func TestHTTPLimits(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Root: root, Log: slog.New(slog.DiscardHandler), HTTPHeaderTimeout: 300 * time.Millisecond, HTTPMaxConns: 2}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.httpServer()
	go hs.Serve(s.httpListener(ln))
	t.Cleanup(func() { hs.Close() })
	addr := ln.Addr().String()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c net.Conn, req string) (string, error) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(b), nil
	}

	// A header that never ends is cut.
	slow := dial()
	io.WriteString(slow, "GET /f HTTP/1.1\r\nHost: x\r\n")
	t0 := time.Now()
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := slow.Read(make([]byte, 1)); err == nil || time.Since(t0) > 3*time.Second {
		// A 408 may come first; the connection must close anyway.
		io.Copy(io.Discard, slow)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("slow header held the connection %v, want about 300ms", d)
	}

	// A body is refused unread, even a huge one announced.
	got, err := get(dial(), "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nab")
	if err != nil || !strings.HasPrefix(got, "405") {
		t.Errorf("POST: %q, %v; want 405", got, err)
	}
	got, err = get(dial(), "GET /f HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\nab")
	if err != nil || !strings.HasPrefix(got, "413") {
		t.Errorf("GET with a body: %q, %v; want 413", got, err)
	}

	// Two connections held open; the third waits until one closes.
	a, b := dial(), dial()
	for _, c := range []net.Conn{a, b} {
		if got, err := get(c, "GET /f HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil || got != "200 OK hello" {
			t.Fatalf("GET: %q, %v", got, err)
		}
	}
	third := make(chan string, 1)
	go func() {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			third <- err.Error()
			return
		}
		defer c.Close()
		got, err := get(c, "GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
		if err != nil {
			got = err.Error()
		}
		third <- got
	}()
	select {
	case got := <-third:
		t.Fatalf("third connection served while two are open: %q", got)
	case <-time.After(300 * time.Millisecond):
	}
	a.Close()
	select {
	case got := <-third:
		if got != "200 OK hello" {
			t.Errorf("third connection: %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("third connection not served after one closed")
	}
}

// listenConfig: loopback is left alone, an address of another interface is
// refused, a wildcard is bound to the interface.
func TestListenConfig(t *testing.T) {
	s := &Server{Interface: "lo", ServerIP: net.IPv4(127, 0, 0, 1)}
	for _, tc := range []struct {
		addr, want string
		bound      bool
	}{
		{"", "127.0.0.1:69", false},
		{"127.0.0.1:6969", "127.0.0.1:6969", false},
		{"0.0.0.0:6969", "0.0.0.0:6969", true},
		{":6969", ":6969", true},
		{"192.0.2.1:69", "", false},
		{"localhost:69", "", false},
	} {
		addr, lc, err := s.listenConfig("--tftp", tc.addr, "69")
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q: no error", tc.addr)
			} else {
				t.Logf("%q: %v", tc.addr, err)
			}
			continue
		}
		if err != nil || addr != tc.want || (lc.Control != nil) != tc.bound {
			t.Errorf("%q: %q bound %v, %v; want %q bound %v", tc.addr, addr, lc != nil && lc.Control != nil, err, tc.want, tc.bound)
		}
	}
}

// TFTP and HTTP on a wildcard address answer on the served interface
// only. Two network namespaces joined by two veth pairs: the server's
// (va 10.98.0.1, served; vc 10.97.0.1, not served) and the client's (vb,
// vd). The test re-executes itself in the server's namespace, as root.
func TestServeInterfaceOnly(t *testing.T) {
	// The server runs whole in one namespace (RunIn: every goroutine's
	// sockets there), the client in another, joined twice: va-vb is the
	// served interface, vc-vd another one the server must not answer on.
	peer := os.Getenv("RAMBOOT_SERVE_PEER_NS")
	if _, in := netnstest.Inside(); !in {
		netnstest.Skip(t)
		netnstest.Need(t, "curl", "curl")
		ns, peerNS := netnstest.New(t), netnstest.New(t)
		netnstest.Veth(t, ns, "va", peerNS, "vb")
		netnstest.Veth(t, ns, "vc", peerNS, "vd")
		for _, a := range [][3]string{{ns, "va", "10.98.0.1/24"}, {ns, "vc", "10.97.0.1/24"}, {peerNS, "vb", "10.98.0.2/24"}, {peerNS, "vd", "10.97.0.2/24"}} {
			netnstest.Run(t, "ip", "-n", a[0], "addr", "add", a[2], "dev", a[1])
			netnstest.Run(t, "ip", "-n", a[0], "link", "set", a[1], "up")
		}
		t.Setenv("RAMBOOT_SERVE_PEER_NS", peerNS)
		netnstest.RunIn(t, ns, 60*time.Second)
		return
	}

	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	s := &Server{Root: root, Interface: "va", DHCP: dhcp.Off, TFTPAddr: "0.0.0.0:69", HTTPAddr: "0.0.0.0:8080",
		Log: slog.New(slog.NewTextHandler(logs, nil))}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "http listening"); {
		if time.Now().After(deadline) {
			t.Fatalf("server not listening:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	curl := func(url string) (string, error) {
		return netnstest.Exec(peer, 10*time.Second, "curl", "-sS", "--max-time", "2", url)
	}
	for _, url := range []string{"tftp://10.98.0.1/f", "http://10.98.0.1:8080/f"} {
		if got, err := curl(url); err != nil || got != "hello" {
			t.Errorf("%s on the served interface: %q, %v", url, got, err)
		}
	}
	for _, url := range []string{"tftp://10.97.0.1/f", "http://10.97.0.1:8080/f"} {
		if got, err := curl(url); err == nil {
			t.Errorf("%s on another interface answered: %q", url, got)
		} else {
			t.Logf("%s on another interface: %v %s", url, err, strings.TrimSpace(got))
		}
	}
}
