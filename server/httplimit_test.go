package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/testenv"
	"github.com/ramboot/ramboot/server/status"
)

// httpLimitServer serves a tree holding images/big.img (size bytes,
// sparse) on 127.0.0.1 through the Server's limited listener, logging
// into the returned buffer.
func httpLimitServer(t *testing.T, s *Server, size int64) (string, *testenv.Buffer) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(root, "images", "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(root, "small"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	s.Root = root
	s.Log = slog.New(slog.NewTextHandler(logs, nil))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.httpServer()
	go hs.Serve(s.httpListener(ln))
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String(), logs
}

// dialFrom connects to addr from the loopback address src (127.0.0.0/8
// is all loopback on Linux: each address is another client).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends one GET on c and reads the whole answer.
func roundTrip(c net.Conn, path string) (int, string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metricValue scrapes /metrics from src and returns the named sample.
func metricValue(t *testing.T, src, addr, name string) float64 {
	t.Helper()
	code, body, err := roundTrip(dialFrom(t, src, addr), MetricsPath)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// One client address holds at most HTTPMaxConnsPerClient connections:
// the next is answered 503 and closed at once, counted and logged; other
// clients are served meanwhile, and a place freed is taken again.
func TestHTTPMaxConnsPerClient(t *testing.T) {
	s := &Server{HTTPMaxConnsPerClient: 3}
	addr, logs := httpLimitServer(t, s, 1<<20)
	var held []net.Conn
	for range 3 {
		c := dialFrom(t, "127.0.0.1", addr)
		if code, body, err := roundTrip(c, "/small"); err != nil || code != 200 || body != "hello" {
			t.Fatalf("GET /small: %d %q %v", code, body, err)
		}
		held = append(held, c) // kept alive
	}
	for i := range 5 {
		c := dialFrom(t, "127.0.0.1", addr)
		code, body, err := roundTrip(c, "/small")
		// The 503 is sent before the request is read, so the client may
		// see a reset instead; either way it is not served.
		if err == nil && (code != http.StatusServiceUnavailable || !strings.Contains(body, "too many connections")) {
			t.Errorf("connection %d over the limit: %d %q, want 503", i+4, code, body)
		}
		t.Logf("connection %d over the limit: %d %q %v", i+4, code, strings.TrimSpace(body), err)
	}
	// Another client is served, and so is /metrics (from a third one).
	if code, _, err := roundTrip(dialFrom(t, "127.0.0.2", addr), "/small"); err != nil || code != 200 {
		t.Errorf("another client: %d %v", code, err)
	}
	if v := metricValue(t, "127.0.0.3", addr, "ramboot_http_connections_refused_total"); v != 5 {
		t.Errorf("ramboot_http_connections_refused_total %v, want 5", v)
	}
	if n := strings.Count(logs.String(), "client over --http-max-conns-per-client"); n != 1 {
		t.Errorf("%d log lines of refusals, want 1 (once per client a minute):\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "remote=127.0.0.1:") {
		t.Errorf("the refusal's line does not name the client:\n%s", logs)
	}
	// A place freed is taken again.
	held[0].Close()
	waitFor(t, "a new connection served once one closed", func() bool {
		code, _, err := roundTrip(dialFrom(t, "127.0.0.1", addr), "/small")
		return err == nil && code == 200
	})
}

// A client that asks for a large file, or for /status.json of a full
// board, and reads nothing is closed after HTTPStallTimeout, counted and
// logged; its places are given back. A client that reads slowly but
// steadily is not.
func TestHTTPStallTimeout(t *testing.T) {
	const stall = 300 * time.Millisecond
	s := &Server{HTTPStallTimeout: stall, HTTPMaxConnsPerClient: 4}
	// A full board: /status.json is about 8 MB, more than the sockets'
	// buffers take (up to 4 MB each way on Linux).
	for i := range status.DefaultMaxOthers {
		mac := fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)
		for j := range status.DefaultMaxSteps {
			s.Board.Record(mac, status.Node{MAC: mac}, "dhcp offer", strings.Repeat("x", 190)+strconv.Itoa(j))
		}
	}
	const size = 256 << 20
	addr, logs := httpLimitServer(t, s, size)

	for _, path := range []string{"/images/big.img", "/status.json"} {
		c := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		time.Sleep(2*stall + 500*time.Millisecond) // read nothing
		// The connection was closed (reset: its unsent data dropped):
		// what the socket holds is read, then it ends, far short.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if err == nil {
			err = io.EOF
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the server still holds the connection %v after the client stopped reading (%d bytes read); log:\n%s", path, 2*stall+500*time.Millisecond, n, logs)
		}
		t.Logf("%s: the client got %d bytes, then %v", path, n, err)
		if full := map[string]int64{"/images/big.img": size, "/status.json": 7 << 20}[path]; n >= full {
			t.Errorf("%s: %d bytes arrived, the whole answer or more", path, n)
		}
	}
	waitFor(t, "both connections given back", func() bool {
		return metricValue(t, "127.0.0.3", addr, "ramboot_http_connections") == 1 // the scrape's own
	})
	if v := metricValue(t, "127.0.0.3", addr, "ramboot_http_stalled_total"); v != 2 {
		t.Errorf("ramboot_http_stalled_total %v, want 2", v)
	}
	if n := strings.Count(logs.String(), "client stopped reading"); n != 1 {
		t.Errorf("%d log lines of stalls from one client, want 1 (once per client a minute):\n%s", n, logs)
	}
	// The image's end is on the board, under the client's address.
	if n, ok := s.Board.Node("ip 127.0.0.1"); !ok || n.Stage != "image download aborted" {
		t.Errorf("board: %+v %v, want the download aborted", n.Stage, ok)
	}

	// A slow reader that keeps reading, 64 kB every 100 ms (the stall
	// timeout is 300 ms), gets the whole file.
	c := dialFrom(t, "127.0.0.2", addr)
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	fmt.Fprintf(c, "GET /images/big.img HTTP/1.1\r\nHost: x\r\nRange: bytes=0-%d\r\n\r\n", 1<<20-1)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	buf := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.ReadFull(resp.Body, buf)
		got += int64(n)
		if err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != 1<<20 {
		t.Errorf("slow reader: %d bytes, want %d", got, 1<<20)
	}
	if v := metricValue(t, "127.0.0.3", addr, "ramboot_http_stalled_total"); v != 2 {
		t.Errorf("ramboot_http_stalled_total %v after the slow reader, want 2", v)
	}
}

// Connections are counted per address, an IPv6 client's per /64.
func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:1234", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1234", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:80", "2001:db8:1:2::"},
		{"[fe80::1%eth0]:80", "fe80::"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := clientKey(a).String(); got != tc.want {
			t.Errorf("clientKey(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}
