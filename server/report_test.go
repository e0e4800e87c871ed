package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/internal/testenv"
	"github.com/ramboot/ramboot/server/status"
)

const (
	nodeMAC  = "52:54:00:12:34:56"
	otherMAC = "52:54:00:ab:cd:ef"
)

// reportServer serves s's handler on 127.0.0.1; the board has nodeMAC at
// 127.0.0.1 (the test client's address) and otherMAC elsewhere.
func reportServer(t *testing.T, s *Server) (*httptest.Server, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	s.Root = t.TempDir()
	s.Log = slog.New(slog.NewTextHandler(logs, nil))
	s.neighborMAC = func(string) string { return "" }
	dhcpAck(s, nodeMAC, "127.0.0.1")
	dhcpAck(s, otherMAC, "192.0.2.77")
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs, logs
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url+report.Path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReportAccepted(t *testing.T) {
	var mu sync.Mutex
	var hooked []string
	s := &Server{OnReport: func(key string, r report.Report) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, key+" "+r.Stage+" "+r.Detail)
	}}
	hs, _ := reportServer(t, s)
	for _, r := range []report.Report{
		{MAC: "52-54-00-12-34-56", Stage: report.NetworkUp, Detail: "eth0 192.0.2.120/24"},
		{MAC: nodeMAC, Stage: report.Download, Bytes: 50 << 20, Total: 200 << 20},
		{MAC: nodeMAC, Stage: report.SwitchRoot, Detail: "/newroot, exec /sbin/init"},
	} {
		b, _ := json.Marshal(r)
		if code, msg := post(t, hs.URL, string(b)); code != http.StatusNoContent {
			t.Fatalf("report %+v: %d %s", r, code, msg)
		}
	}
	n, _ := s.Board.Node(nodeMAC)
	if n.Stage != "dhcp ack" || n.Reported == nil || n.Reported.Stage != report.SwitchRoot || n.Reported.By != status.ByNode {
		t.Errorf("board: server's stage %q, node's %+v", n.Stage, n.Reported)
	}
	var progress string
	for _, st := range n.Steps {
		if st.Stage == report.Download {
			progress = st.Detail
		}
	}
	if progress != "52428800 of 209715200 bytes (25%)" {
		t.Errorf("download step detail %q", progress)
	}
	mu.Lock()
	if len(hooked) != 3 || hooked[2] != nodeMAC+" switch_root /newroot, exec /sbin/init" {
		t.Errorf("OnReport saw %q", hooked)
	}
	mu.Unlock()
	resp, err := http.Get(hs.URL + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(js), `"stage":"switch_root","detail":"/newroot, exec /sbin/init","by":"node"`) {
		t.Errorf("status.json has no switch_root by the node:\n%s", js)
	}
	text := scrape(t, hs.URL)
	if got := metric(text, `ramboot_reports_total{stage="switch_root"}`); got != 1 {
		t.Errorf("reports of switch_root counted %v, want 1", got)
	}
}

// A report for a MAC the source address does not belong to is refused,
// and the other node's record is left alone; the refusal is logged once.
func TestReportSpoofRefused(t *testing.T) {
	s := &Server{}
	hs, logs := reportServer(t, s)
	for range 3 {
		code, msg := post(t, hs.URL, `{"mac":"`+otherMAC+`","stage":"failed","detail":"pwned"}`)
		if code != http.StatusForbidden {
			t.Fatalf("spoofed report: %d %s, want 403", code, msg)
		}
	}
	if n, _ := s.Board.Node(otherMAC); n.Reported != nil || len(n.Steps) != 1 {
		t.Errorf("the spoofed node's record changed: %+v", n)
	}
	if c := strings.Count(logs.String(), "report refused"); c != 1 {
		t.Errorf("refusal logged %d times, want once:\n%s", c, logs.String())
	}
	// A MAC the board never saw cannot make up a node either.
	if code, _ := post(t, hs.URL, `{"mac":"02:00:00:00:00:99","stage":"shell"}`); code != http.StatusForbidden {
		t.Errorf("report for an unknown MAC: %d, want 403", code)
	}
	if s.Board.Has("02:00:00:00:00:99") {
		t.Error("a report made up a node")
	}
	if got := metric(scrape(t, hs.URL), `ramboot_errors_total{kind="report_refused"}`); got != 4 {
		t.Errorf("refused reports counted %v, want 4", got)
	}
}

// When the server's DHCP granted the source address to no node (proxy
// DHCP: the address came from another server), the neighbour table's MAC
// decides, if DHCP saw that MAC; each report is checked afresh (an
// accepted one binds nothing). Where the server's ACK did grant the
// address, a neighbour table that says another MAC wins: refused.
func TestReportNeighbour(t *testing.T) {
	s := &Server{}
	hs, _ := reportServer(t, s)
	dhcpAck(s, nodeMAC, "192.0.2.120") // 127.0.0.1 is no one's now
	if got := s.Board.KeyOfIP("127.0.0.1"); got != "" {
		t.Fatalf("after the node's new ACK, KeyOfIP(127.0.0.1) = %q", got)
	}
	for _, tc := range []struct {
		neigh, mac string
		want       int
	}{
		{otherMAC, nodeMAC, http.StatusForbidden},                        // the table says another node
		{"", nodeMAC, http.StatusForbidden},                              // the table says nothing
		{"02:00:00:00:00:99", "02:00:00:00:00:99", http.StatusForbidden}, // a MAC DHCP never saw
		{nodeMAC, nodeMAC, http.StatusNoContent},
		{"", nodeMAC, http.StatusForbidden}, // the accepted report bound nothing
	} {
		s.neighborMAC = func(string) string { return tc.neigh }
		if code, msg := post(t, hs.URL, `{"mac":"`+tc.mac+`","stage":"shell"}`); code != tc.want {
			t.Errorf("neighbour table %q, report for %s: %d %s, want %d", tc.neigh, tc.mac, code, msg, tc.want)
		}
	}
	if got := s.Board.KeyOfIP("127.0.0.1"); got != "" {
		t.Errorf("an accepted report bound the address to %q", got)
	}
	// Full mode: the ACK granted 127.0.0.1 to nodeMAC, but the host there
	// has another Ethernet address (it asked under nodeMAC's name).
	dhcpAck(s, nodeMAC, "127.0.0.1")
	s.neighborMAC = func(string) string { return otherMAC }
	if code, _ := post(t, hs.URL, `{"mac":"`+nodeMAC+`","stage":"shell"}`); code != http.StatusForbidden {
		t.Errorf("bound by DHCP, neighbour table says %s: %d, want 403", otherMAC, code)
	}
	s.neighborMAC = func(string) string { return nodeMAC }
	if code, _ := post(t, hs.URL, `{"mac":"`+nodeMAC+`","stage":"shell"}`); code != http.StatusNoContent {
		t.Errorf("bound by DHCP, neighbour table agrees: %d, want 204", code)
	}
}

func TestReportBadInput(t *testing.T) {
	s := &Server{ReportBurst: 3, ReportRate: 1}
	hs, _ := reportServer(t, s)
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"mac":"` + nodeMAC + `","stage":"shell","detail":"` + strings.Repeat("x", report.MaxBody) + `"}`, http.StatusRequestEntityTooLarge},
		{`{"mac":"` + nodeMAC + `","stage":`, http.StatusBadRequest},
		{`not json`, http.StatusBadRequest},
		{`{"mac":"` + nodeMAC + `","stage":"rm -rf"}`, http.StatusBadRequest},
		{`{"mac":"zz","stage":"shell"}`, http.StatusBadRequest},
		{`{"mac":"` + nodeMAC + `","stage":"download","bytes":-5}`, http.StatusBadRequest},
	} {
		if code, msg := post(t, hs.URL, tc.body); code != tc.code {
			t.Errorf("%.60q: %d %s, want %d", tc.body, code, msg, tc.code)
		}
	}
	// A body without a length, too long: cut at MaxBody.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"mac":"` + nodeMAC + `","detail":"`))
		pw.Write([]byte(strings.Repeat("y", 3*report.MaxBody)))
		pw.Close()
	}()
	resp, err := http.Post(hs.URL+report.Path, "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the cap: %d, want 413", resp.StatusCode)
	}
	resp, err = http.Get(hs.URL + report.Path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET %s: %d, Allow %q", report.Path, resp.StatusCode, resp.Header.Get("Allow"))
	}
	// The node's own bucket: 3 at once, then 429.
	var codes []int
	for range 5 {
		code, _ := post(t, hs.URL, `{"mac":"`+nodeMAC+`","stage":"download","bytes":1}`)
		codes = append(codes, code)
	}
	if codes[0] != 204 || codes[2] != 204 || codes[4] != http.StatusTooManyRequests {
		t.Errorf("burst of 5 reports with a burst limit of 3: %v", codes)
	}
	if n, _ := s.Board.Node(nodeMAC); n.Reported != nil && len(n.Reported.Detail) > report.MaxDetail+40 {
		t.Errorf("detail of %d bytes kept", len(n.Reported.Detail))
	}
}

func TestNeighborMAC(t *testing.T) {
	f := filepath.Join(t.TempDir(), "arp")
	os.WriteFile(f, []byte(`IP address       HW type     Flags       HW address            Mask     Device
192.0.2.120      0x1         0x2         52:54:00:12:34:56     *        br0
192.0.2.121      0x1         0x0         00:00:00:00:00:00     *        br0
192.0.2.122      0x1         0x2         52:54:00:12:34:57     *        eth9
`), 0o644)
	for ip, want := range map[string]string{"192.0.2.120": nodeMAC, "192.0.2.121": "", "192.0.2.122": "", "192.0.2.9": ""} {
		if got := neighborMAC(f, "br0", ip); got != want {
			t.Errorf("neighborMAC(%s) = %q, want %q", ip, got, want)
		}
	}
	if got := neighborMAC(filepath.Join(t.TempDir(), "none"), "br0", "192.0.2.120"); got != "" {
		t.Errorf("missing table: %q", got)
	}
}
