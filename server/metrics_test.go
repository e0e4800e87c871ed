package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/internal/testenv"
	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/server/status"
)

// scrape GETs /metrics from base and returns the exposition text.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", MetricsPath, resp.Status, err, b)
	}
	return string(b)
}

// metric is the value of the series `name{labels}` (labels as the text
// format writes them: sorted, quoted) in a scrape, or -1 if absent.
func metric(text, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// runLoopback runs s on 127.0.0.1 (no DHCP; TFTP and HTTP on free high
// ports) and returns the HTTP base URL and the TFTP address.
func runLoopback(t *testing.T, s *Server) (string, string) {
	t.Helper()
	startLoopback(t, s)
	return "http://" + s.HTTPAddr, s.TFTPAddr
}

// startLoopback runs s on 127.0.0.1 as runLoopback does and returns its
// log.
func startLoopback(t *testing.T, s *Server) *testenv.Buffer {
	t.Helper()
	tl, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.TFTPAddr, s.HTTPAddr = tl.LocalAddr().String(), hl.Addr().String()
	tl.Close()
	hl.Close()
	s.Interface, s.DHCP = "lo", dhcp.Off
	logs := &testenv.Buffer{}
	s.Log = slog.New(slog.NewTextHandler(logs, nil))
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
	return logs
}

// Real TFTP and HTTP clients against a running server: the transfer
// counters, bytes and errors move by what they did, and the inventory's
// node has its stage and last-seen time, nothing for made-up clients.
func TestMetricsTFTPAndHTTP(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		testenv.Skip(t, "curl not installed (`make test` installs it via e2e/deps.sh)")
	}
	root := t.TempDir()
	file := bytes.Repeat([]byte("ramboot "), 10000) // 80000 bytes
	if err := os.WriteFile(filepath.Join(root, "f"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := filepath.Join(t.TempDir(), "nodes.yaml")
	if err := os.WriteFile(nodes, []byte("nodes:\n  - mac: 52:54:00:12:34:56\n    hostname: node-7\n  - mac: 52:54:00:12:34:57\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Root: root, Nodes: nodes}
	base, taddr := runLoopback(t, s)
	before := scrape(t, base)
	for _, series := range []string{`ramboot_tftp_transfers_total{result="completed"}`, `ramboot_http_bytes_total`,
		`ramboot_errors_total{kind="tftp_busy"}`, `ramboot_dhcp_replies_total{kind="pi4",type="offer"}`, `ramboot_inventory_nodes`} {
		if v := metric(before, series); v != 0 && !(series == `ramboot_inventory_nodes` && v == 2) {
			t.Errorf("before any transfer: %s = %v", series, v)
		}
	}

	curl := func(args ...string) {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "5", "-o", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "not found") && !strings.Contains(string(out), "404") {
			t.Logf("curl %v: %v %s", args, err, out)
		}
	}
	for range 3 {
		curl("tftp://" + taddr + "/f")
	}
	curl("tftp://" + taddr + "/nothing-here")
	curl("http://" + s.HTTPAddr + "/f")
	curl("-f", "http://"+s.HTTPAddr+"/nothing-here")
	// A node of the inventory, as the status board learns it.
	s.Board.Record("52:54:00:12:34:56", status.Node{MAC: "52:54:00:12:34:56"}, "dhcp offer", "")
	s.Board.Record("02:00:00:00:00:01", status.Node{MAC: "02:00:00:00:00:01"}, "dhcp offer", "")

	after := scrape(t, base)
	for series, want := range map[string]float64{
		`ramboot_tftp_transfers_total{result="started"}`:                                               4,
		`ramboot_tftp_transfers_total{result="completed"}`:                                             3,
		`ramboot_tftp_transfers_total{result="failed"}`:                                                1,
		`ramboot_tftp_bytes_total`:                                                                     3 * float64(len(file)),
		`ramboot_errors_total{kind="tftp_not_found"}`:                                                  1,
		`ramboot_http_transfers_total{result="started"}`:                                               2,
		`ramboot_http_transfers_total{result="completed"}`:                                             1,
		`ramboot_http_transfers_total{result="failed"}`:                                                1,
		`ramboot_errors_total{kind="http_not_found"}`:                                                  1,
		`ramboot_node_stage{mac="52:54:00:12:34:56",node="node-7",source="server",stage="dhcp offer"}`: 1,
	} {
		if got := metric(after, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// HTTP bytes: the file and the 404 page.
	if got := metric(after, "ramboot_http_bytes_total"); got < float64(len(file)) || got > float64(len(file))+200 {
		t.Errorf("ramboot_http_bytes_total = %v, want the file's %d and a 404 page", got, len(file))
	}
	if !regexp.MustCompile(`(?m)^ramboot_node_last_seen_timestamp_seconds\{mac="52:54:00:12:34:56",node="node-7"\} \d\.\d+e\+09$`).MatchString(after) {
		t.Errorf("no last-seen time for node-7:\n%s", grepLines(after, "ramboot_node_"))
	}
	// Nothing for the node not seen, nothing for the made-up client.
	for _, absent := range []string{"52:54:00:12:34:57", "02:00:00:00:00:01"} {
		if strings.Contains(after, absent) {
			t.Errorf("a series for %s:\n%s", absent, grepLines(after, absent))
		}
	}
	// The scrapes themselves are not transfers.
	if got := metric(scrape(t, base), `ramboot_http_transfers_total{result="started"}`); got != 2 {
		t.Errorf("after more scrapes, started HTTP transfers = %v, want 2", got)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Each Server has its own registry: two in one process count apart.
func TestMetricsPerServer(t *testing.T) {
	a, b := &Server{Root: t.TempDir()}, &Server{Root: t.TempDir()}
	a.metrics().countDHCP(dhcp.Event{Type: "bad-packet"})
	ha, hb := a.Handler(), b.Handler()
	get := func(h http.Handler) string {
		rec := &responseRecorder{header: http.Header{}}
		req, _ := http.NewRequest("GET", MetricsPath, nil)
		h.ServeHTTP(rec, req)
		return rec.body.String()
	}
	if va, vb := metric(get(ha), `ramboot_errors_total{kind="dhcp_malformed"}`), metric(get(hb), `ramboot_errors_total{kind="dhcp_malformed"}`); va != 1 || vb != 0 {
		t.Errorf("malformed DHCP packets: server a %v (want 1), server b %v (want 0)", va, vb)
	}
}

type responseRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *responseRecorder) Header() http.Header         { return r.header }
func (r *responseRecorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *responseRecorder) WriteHeader(code int)        { r.code = code }

// Client kinds come from a fixed list, whatever a client sends.
func TestClientKindBounded(t *testing.T) {
	known := map[string]bool{}
	for _, k := range clientKinds {
		known[k] = true
	}
	mac := net.HardwareAddr{0xdc, 0xa6, 0x32, 1, 2, 3}
	for _, c := range []dhcp.Client{
		{Kind: dhcp.PiBootROM, Model: "RPi4"}, {Kind: dhcp.PiBootROM, Model: "RPi3"}, {Kind: dhcp.PiBootROM, Model: "anything"},
		{Kind: dhcp.RambootInit}, {Kind: dhcp.IPXE}, {Kind: dhcp.PCFirmware, Arch: 0}, {Kind: dhcp.PCFirmware, Arch: 7},
		{Kind: dhcp.PCFirmware, Arch: 0xffff}, {Kind: dhcp.HTTPBoot}, {Kind: dhcp.Other, MAC: mac, Vendor: strings.Repeat("x", 300)},
	} {
		if k := clientKind(c); !known[k] {
			t.Errorf("clientKind(%+v) = %q, not in the list", c, k)
		}
	}
	if clientKind(dhcp.Client{Kind: dhcp.PiBootROM, Model: "RPi4"}) != "pi4" || clientKind(dhcp.Client{Kind: dhcp.PCFirmware, Arch: 7}) != "pc-uefi" {
		t.Error("pi4 or pc-uefi misnamed")
	}
}

// A real DHCP exchange: a Pi 4's DISCOVER and ramboot's init's DISCOVER
// and a malformed packet, sent over a veth pair to the server in proxy
// mode on port 67, in a network namespace of the test's own (192.0.2.0/24,
// no route out). The replies are counted by client kind and type.
func TestMetricsDHCP(t *testing.T) {
	if os.Getenv("RAMBOOT_METRICS_IN_NETNS") == "" {
		if testing.Short() {
			t.Skip("network namespace test: not in -short")
		}
		if os.Geteuid() != 0 {
			testenv.Skip(t, "needs root for a network namespace")
		}
		for _, tool := range []string{"unshare", "ip"} {
			if _, err := exec.LookPath(tool); err != nil {
				testenv.Skipf(t, "%s not installed (`make test` installs it via e2e/deps.sh)", tool)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", "-n", os.Args[0], "-test.run", "^TestMetricsDHCP$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "RAMBOOT_METRICS_IN_NETNS=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in the namespace:\n%s", bytes.TrimSpace(out))
		if err != nil || !strings.Contains(string(out), "--- PASS: TestMetricsDHCP") {
			t.Fatalf("test in the network namespace failed: %v", err)
		}
		return
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "va", "type", "veth", "peer", "name", "vb"},
		{"addr", "add", "192.0.2.1/24", "dev", "va"},
		{"link", "set", "va", "up"},
		{"link", "set", "vb", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	// Both ends are in this namespace: let each take packets from the
	// other's (local) address.
	for _, f := range []string{"all/accept_local", "va/accept_local", "vb/accept_local", "all/rp_filter", "va/rp_filter", "vb/rp_filter"} {
		v := "1"
		if strings.HasSuffix(f, "rp_filter") {
			v = "0"
		}
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+f, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nodes := filepath.Join(t.TempDir(), "nodes.yaml")
	if err := os.WriteFile(nodes, []byte("nodes:\n  - mac: 52:54:00:12:34:56\n    hostname: node-7\n    option224: shell\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	s := &Server{Root: t.TempDir(), Interface: "va", DHCP: dhcp.Proxy, Nodes: nodes, HTTPAddr: "127.0.0.1:8080", TFTPAddr: "127.0.0.1:69",
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
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

	// The client: port 68 on vb, broadcasting.
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "vb"); serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			}
		})
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", "0.0.0.0:68")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	exchange := func(mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		t.Helper()
		hw, _ := net.ParseMAC(mac)
		req, err := dhcpv4.NewDiscovery(hw, mods...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.WriteTo(req.ToBytes(), bcast); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		for {
			pc.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("no reply to %s: %v\n%s", mac, err, logs.String())
			}
			resp, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && resp.OpCode == dhcpv4.OpcodeBootReply && resp.TransactionID == req.TransactionID {
				return resp
			}
		}
	}
	pi4 := []byte{0, 'R', 'P', 'i', '4', 0, 0, 0, 0, 0, 0, 0, 0, 0x9f, 0xfe, 0xfd, 0xef}
	if r := exchange("dc:a6:32:01:36:c2", dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, pi4)); r.MessageType() != dhcpv4.MessageTypeOffer {
		t.Errorf("Pi 4: %v", r.MessageType())
	}
	for range 2 {
		if r := exchange("52:54:00:12:34:56", dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:ramboot"))); r.MessageType() != dhcpv4.MessageTypeOffer {
			t.Errorf("init: %v", r.MessageType())
		}
	}
	pc.WriteTo([]byte("not a DHCP packet"), bcast)

	var text string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		text = scrape(t, "http://127.0.0.1:8080")
		if metric(text, `ramboot_errors_total{kind="dhcp_malformed"}`) >= 1 || time.Now().After(deadline) {
			break
		}
	}
	for series, want := range map[string]float64{
		`ramboot_dhcp_replies_total{kind="pi4",type="offer"}`:                                          1,
		`ramboot_dhcp_replies_total{kind="ramboot-init",type="offer"}`:                                 2,
		`ramboot_dhcp_replies_total{kind="ipxe",type="offer"}`:                                         0,
		`ramboot_errors_total{kind="dhcp_malformed"}`:                                                  1,
		`ramboot_node_stage{mac="52:54:00:12:34:56",node="node-7",source="server",stage="dhcp offer"}`: 1,
	} {
		if got := metric(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", grepLines(text, "ramboot_"))
	}
}

// BenchmarkScrape: the server's CPU for one scrape of /metrics (with an
// inventory of 100 nodes on the board), to set beside
// e2e's BenchmarkMetricsScrape.
func BenchmarkScrape(b *testing.B) {
	dir := b.TempDir()
	var yaml strings.Builder
	yaml.WriteString("nodes:\n")
	s := &Server{Root: dir, Log: slog.New(slog.DiscardHandler)}
	for i := range 100 {
		mac := fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256)
		fmt.Fprintf(&yaml, "  - mac: %s\n    hostname: node-%d\n", mac, i)
		s.Board.Record(mac, status.Node{MAC: mac}, "dhcp offer", "")
		s.Board.Report(mac, status.Node{}, "switch_root", "")
	}
	s.Nodes = filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(s.Nodes, []byte(yaml.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			size := 0
			for b.Loop() {
				rec := &responseRecorder{header: http.Header{}}
				req, _ := http.NewRequest("GET", MetricsPath, nil)
				req.Header.Set("Accept-Encoding", enc)
				h.ServeHTTP(rec, req)
				size = rec.body.Len()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}
