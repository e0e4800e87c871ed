package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/internal/testenv"
	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/server/status"
	"github.com/ramboot/ramboot/site"
	"github.com/ramboot/ramboot/site/inventory"
)

const (
	lcSHA  = "3f0c8a2b6f3c5d1e9a7b4c2d0e8f6a4b2c0d9e7f5a3b1c8d6e4f2a0b9c7d5e3f"
	lcSHA2 = "0000000000000000000000000000000000000000000000000000000000000002"
	lcMAC  = "52:54:00:12:34:61"
)

func lcNodes(sha string) string {
	return `defaults:
  option224: shell
nodes:
  - mac: ` + lcMAC + `
    hostname: web-1
    install: {image: "http://{{.Server}}:8080/img/debian.raw", sha256: ` + sha + `, disk: /dev/vda}
  - mac: 52:54:00:12:34:62
    hostname: web-2
    install: {image: "http://{{.Server}}:8080/img/debian.raw", sha256: none}
    boot: "local:LABEL=root"
  - mac: 52:54:00:12:34:63
    hostname: nfs-1
`
}

var lcInstall = "install:http://192.0.2.1:8080/img/debian.raw#sha256=" + lcSHA + "&disk=/dev/vda&hostname=web-1&gen=1"

// lcServer is a server with nodes.yaml and a state file in dir, opened as
// Run opens them.
func lcServer(t *testing.T, dir, nodes string) (*Server, *testenv.Buffer) {
	t.Helper()
	root := filepath.Join(dir, "tree")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	nf := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(nf, []byte(nodes), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	s := &Server{Root: root, Nodes: nf, ServerIP: net.IPv4(192, 0, 2, 1), Log: slog.New(slog.NewTextHandler(logs, nil))}
	if err := s.openSite(); err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// dhcp224 asks s, through the DHCP protocol handler, for option 224 as
// ramboot's init does (a DISCOVER with vendor class "ramboot"), and reads
// it back from the reply's wire bytes.
func dhcp224(t *testing.T, s *Server, mac string) string {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	req, err := dhcpv4.NewDiscovery(hw,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(dhcp.RambootVendorClass)),
		dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(224)))
	if err != nil {
		t.Fatal(err)
	}
	ds := &dhcp.Server{Mode: dhcp.Proxy, ServerIP: s.ServerIP, Subnet: net.CIDRMask(24, 32), Decide: s.decide}
	resp, ev := ds.Handle(req)
	if resp == nil {
		t.Fatalf("%s: no reply: %+v", mac, ev)
	}
	back, err := dhcpv4.FromBytes(resp.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return string(back.Options.Get(dhcpv4.GenericOptionCode(224)))
}

// say is the node's report as the report endpoint hands it on.
func say(s *Server, stage, detail string) {
	note(s, lcMAC, stage, detail)
}

// note hands the Booter a report of mac's as the report endpoint does
// once it believes it.
func note(s *Server, mac, stage, detail string) {
	hw, _ := net.ParseMAC(mac)
	s.booter().NoteReport(hw, s.ServerIP, stage, detail)
}

func want224(t *testing.T, s *Server, step, want string) {
	t.Helper()
	if got := dhcp224(t, s, lcMAC); got != want {
		t.Fatalf("%s: option 224 = %q, want %q", step, got, want)
	}
}

func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	s, logs := lcServer(t, dir, lcNodes(lcSHA))
	state := filepath.Join(dir, "state.json")
	if got := s.ownSite().StatePath(); got != state {
		t.Fatalf("state file %s, want %s (next to the tree)", got, state)
	}

	want224(t, s, "new node", lcInstall)
	if got := dhcp224(t, s, "52:54:00:12:34:63"); got != "shell" {
		t.Fatalf("a node without install: got %q", got)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("DHCP wrote the state file: %v", err)
	}

	say(s, "network-up", "eth0 "+lcMAC)
	say(s, site.StageInstall, "started http://192.0.2.1:8080/img/debian.raw -> /dev/vda")
	rec := readRec(t, state)
	if rec.State != site.StateInstalling || rec.Name != "web-1" || rec.Image != "http://192.0.2.1:8080/img/debian.raw" || rec.SHA256 != lcSHA {
		t.Fatalf("after install started: %+v", rec)
	}
	st1, _ := os.Stat(state)
	say(s, site.StageInstall, "1048576 of 4194304 bytes (50 MB/s)")
	if st2, _ := os.Stat(state); !os.SameFile(st1, st2) {
		t.Fatal("a progress report wrote the state file again")
	}
	want224(t, s, "installing (a power cut now means a clean retry)", lcInstall)

	say(s, site.StageInstallFailed, "sha256 mismatch")
	if rec := readRec(t, state); rec.State != site.StateFailed || rec.Detail != "sha256 mismatch" {
		t.Fatalf("after failure: %+v", rec)
	}
	want224(t, s, "failed", lcInstall)

	say(s, site.StageInstallDone, "/dev/vda sha256="+strings.ToUpper(lcSHA))
	if rec := readRec(t, state); rec.State != site.StateInstalled || rec.SHA256 != lcSHA || rec.ReinstallRequested {
		t.Fatalf("after done: %+v", rec)
	}
	want224(t, s, "installed", "local")

	// An installed node cannot wipe itself by reporting an install.
	say(s, site.StageInstallFailed, "made up")
	say(s, site.StageInstall, "made up")
	if rec := readRec(t, state); rec.State != site.StateInstalled {
		t.Fatalf("an installed node's own report changed its state: %+v", rec)
	}
	if !strings.Contains(logs.String(), "install report ignored") {
		t.Fatalf("the ignored report was not logged:\n%s", logs)
	}
	want224(t, s, "installed, after made-up reports", "local")

	// A new image in nodes.yaml does not reinstall by itself.
	if err := os.WriteFile(s.Nodes, []byte(lcNodes(lcSHA2)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	want224(t, s, "installed, image changed in nodes.yaml", "local")

	// The operator asks (as `ramboot node reinstall` does, from another
	// process): the running server sees it at the next request.
	if err := site.UpdateState(state, func(st *site.State) error {
		n := st.Nodes[lcMAC]
		n.ReinstallRequested, n.Generation = true, n.Gen()+1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	newInstall := strings.Replace(strings.Replace(lcInstall, lcSHA, lcSHA2, 1), "&gen=1", "&gen=2", 1)
	want224(t, s, "reinstall asked", newInstall)
	say(s, site.StageInstall, "started")
	want224(t, s, "reinstalling", newInstall)
	say(s, site.StageInstallDone, "/dev/vda sha256="+lcSHA2+" gen=2")
	if rec := readRec(t, state); rec.State != site.StateInstalled || rec.SHA256 != lcSHA2 || rec.ReinstallRequested || rec.Generation != 2 {
		t.Fatalf("after the reinstall: %+v", rec)
	}
	want224(t, s, "reinstalled", "local")

	// A restart keeps the state.
	s2, _ := lcServer(t, dir, lcNodes(lcSHA2))
	want224(t, s2, "after a restart", "local")

	// A node with boot: gets it once installed.
	note(s2, "52:54:00:12:34:62", site.StageInstallDone, "/dev/vda sha256="+lcSHA)
	if got := dhcp224(t, s2, "52:54:00:12:34:62"); got != "local:LABEL=root" {
		t.Fatalf("installed node with boot: got %q", got)
	}
	// A node without install: is never recorded.
	note(s2, "52:54:00:12:34:63", site.StageInstallDone, "")
	if st, err := site.ReadState(state); err != nil || st.Nodes["52:54:00:12:34:63"] != nil {
		t.Fatalf("a node without install: was recorded: %v %+v", err, st)
	}
}

func readRec(t *testing.T, path string) site.NodeState {
	t.Helper()
	st, err := site.ReadState(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := st.Nodes[lcMAC]
	if rec == nil {
		t.Fatalf("no record for %s in %+v", lcMAC, st.Nodes)
	}
	if rec.Since.IsZero() {
		t.Fatalf("record without since: %+v", rec)
	}
	return *rec
}

func TestLifecycleCorruptState(t *testing.T) {
	dir := t.TempDir()
	s, logs := lcServer(t, dir, lcNodes(lcSHA))
	state := filepath.Join(dir, "state.json")
	say(s, site.StageInstallDone, "/dev/vda sha256="+lcSHA)
	want224(t, s, "installed", "local")

	// A running server keeps the state it had and records nothing.
	if err := os.WriteFile(state, []byte(`{"nodes": {`), 0o644); err != nil {
		t.Fatal(err)
	}
	want224(t, s, "file corrupt", "local")
	if !strings.Contains(logs.String(), "state file unreadable") || !strings.Contains(logs.String(), state) {
		t.Fatalf("the corrupt file was not logged by name:\n%s", logs)
	}
	say(s, site.StageInstallFailed, "x")
	if data, _ := os.ReadFile(state); string(data) != `{"nodes": {` {
		t.Fatalf("the corrupt file was overwritten: %q", data)
	}

	// A start refuses it, naming the file.
	for _, bad := range []string{
		`{"nodes": {`,
		`{"nodes": {"52:54:00:12:34:61": {"state": "done"}}}`,
		`{"nodes": {"web-1": {"state": "installed"}}}`,
		`{"nodes": {}, "extra": 1}`,
	} {
		if err := os.WriteFile(state, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		s3 := &Server{Root: filepath.Join(dir, "tree"), StateFile: state}
		err := s3.openSite()
		if err == nil || !strings.Contains(err.Error(), state) || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

// TestLongOption224 checks that an option 224 longer than one DHCP option
// (255 bytes) goes out as several (RFC 3396) and is read back whole, as
// ramboot's init reads it (the same library on both sides).
func TestLongOption224(t *testing.T) {
	long := "install:http://192.0.2.1:8080/" + strings.Repeat("d", 300) + "/debian.raw#sha256=" + lcSHA
	inv, err := inventory.Parse([]byte("nodes:\n  - mac: " + lcMAC + "\n    option224: \"" + long + "\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The site is faked: the server asks it through a BooterFunc.
	s := &Server{ServerIP: net.IPv4(192, 0, 2, 1), Booter: BooterFunc(inv.Lookup)}
	hw, _ := net.ParseMAC(lcMAC)
	req, _ := dhcpv4.NewDiscovery(hw, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(dhcp.RambootVendorClass)))
	resp, _ := (&dhcp.Server{Mode: dhcp.Proxy, ServerIP: s.ServerIP, Decide: s.decide}).Handle(req)
	if resp == nil {
		t.Fatal("no reply")
	}
	wire := resp.ToBytes()
	if n := bytes.Count(wire, []byte{224, 255}); n < 1 {
		t.Fatalf("no full-length option 224 piece in the reply")
	}
	back, err := dhcpv4.FromBytes(wire)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(back.Options.Get(dhcpv4.GenericOptionCode(224))); got != long {
		t.Fatalf("read back %d bytes, want %d", len(got), len(long))
	}
}

// TestLifecycleReportEndpoint drives the lifecycle through POST /report as
// a node does: only the node's own address changes its state.
func TestLifecycleReportEndpoint(t *testing.T) {
	dir := t.TempDir()
	s, _ := lcServer(t, dir, lcNodes(lcSHA))
	s.neighborMAC = func(string) string { return "" }
	const other = "52:54:00:12:34:62"
	s.Board.DHCP(lcMAC, status.Node{MAC: lcMAC, IP: "127.0.0.1", Kind: "ramboot-init"}, "dhcp ack", "", status.Bound)
	s.Board.DHCP(other, status.Node{MAC: other, IP: "192.0.2.77", Kind: "ramboot-init"}, "dhcp ack", "", status.Bound)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	post := func(mac, stage, detail string) int {
		t.Helper()
		body, _ := json.Marshal(report.Report{MAC: mac, Stage: stage, Detail: detail})
		resp, err := http.Post(hs.URL+report.Path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A PC's iPXE script carries the same option 224 on the kernel's
	// command line.
	tree := filepath.Join(dir, "tree")
	if err := os.WriteFile(filepath.Join(tree, "manifest.json"), []byte(`{"board":"pc","arch":"amd64","kernel_file":"vmlinuz"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	script := func(step, want string) {
		t.Helper()
		resp, err := http.Get(hs.URL + "/boot/52-54-00-12-34-61.ipxe?arch=amd64")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), " ramboot.224="+want+" ") {
			t.Fatalf("%s: iPXE script without ramboot.224=%s:\n%s", step, want, body)
		}
	}
	want224(t, s, "new", lcInstall)
	// {{.Server}} is the address the script was asked on.
	script("new", strings.Replace(lcInstall, "192.0.2.1", "127.0.0.1", 1))
	// 127.0.0.1 is lcMAC's: it cannot say web-2 is installed.
	if code := post(other, site.StageInstallDone, "/dev/vda sha256="+lcSHA); code != http.StatusForbidden {
		t.Fatalf("a report for another node: %d", code)
	}
	if st, err := site.ReadState(filepath.Join(dir, "state.json")); err != nil || st.Nodes[other] != nil {
		t.Fatalf("a spoofed report was recorded: %v %+v", err, st)
	}
	if code := post(lcMAC, site.StageInstall, "started"); code != http.StatusNoContent {
		t.Fatalf("install: %d", code)
	}
	want224(t, s, "installing", lcInstall)
	// A state file that cannot take the outcome (corrupt here; a lock
	// held past its timeout, a full disk) is no acknowledgement: 503, so
	// the init delivers it again; counted.
	state := filepath.Join(dir, "state.json")
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := post(lcMAC, site.StageInstallDone, "/dev/vda sha256="+lcSHA); code != http.StatusServiceUnavailable {
		t.Fatalf("install done with a corrupt state file: %d, want 503", code)
	}
	if got := metric(scrape(t, hs.URL), `ramboot_errors_total{kind="report_not_recorded"}`); got != 1 {
		t.Errorf("report_not_recorded = %v, want 1", got)
	}
	if err := os.WriteFile(state, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := post(lcMAC, site.StageInstallDone, "/dev/vda sha256="+lcSHA); code != http.StatusNoContent {
		t.Fatalf("install done: %d", code)
	}
	// The state is on disk when the node has its answer.
	if rec := readRec(t, filepath.Join(dir, "state.json")); rec.State != site.StateInstalled {
		t.Fatalf("after install done: %+v", rec)
	}
	want224(t, s, "installed", "local")
	script("installed", "local")
}

// TestLifecycleGenerations: the install form carries the node's install
// generation; a lost "install done" is learnt from the next boot's report
// of a disk left as it was; a reinstall draws a new generation, and an
// outcome for any other generation (an install that ends after the
// reinstall was asked, a disk record a tenant wrote) changes nothing.
func TestLifecycleGenerations(t *testing.T) {
	dir := t.TempDir()
	s, logs := lcServer(t, dir, lcNodes(lcSHA))
	state := filepath.Join(dir, "state.json")
	form := func(gen int) string { return strings.Replace(lcInstall, "&gen=1", "&gen="+strconv.Itoa(gen), 1) }
	reinstall := func() int {
		t.Helper()
		var gen int
		if err := site.UpdateState(state, func(st *site.State) error {
			n := st.Nodes[lcMAC]
			g, err := site.NewGeneration(n.Gen())
			n.ReinstallRequested, n.Generation, gen = true, g, g
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return gen
	}
	kept := func(g int) string {
		return fmt.Sprintf("/dev/vda sha256=%s gen=%d already installed at generation %d on 2026-12-07T13:00:00Z: the disk is not written", lcSHA, g, g)
	}

	// A node with no record is at generation 1.
	want224(t, s, "new node", form(1))
	say(s, site.StageInstall, "started")
	if rec := readRec(t, state); rec.Generation != 1 || rec.State != site.StateInstalling {
		t.Fatalf("after install started: %+v", rec)
	}
	// Its "install done" is lost: the next boot finds the disk installed
	// and says so; the server records it installed at that generation.
	want224(t, s, "report lost", form(1))
	say(s, site.StageInstallDone, kept(1))
	if rec := readRec(t, state); rec.State != site.StateInstalled || rec.Generation != 1 || rec.SHA256 != lcSHA || !strings.Contains(rec.Detail, "already installed") {
		t.Fatalf("after the next boot's report: %+v", rec)
	}
	want224(t, s, "installed", "local")

	// A reinstall draws a generation; the install's own report is lost;
	// the next boot finds that generation on the disk: answered.
	g := reinstall()
	if g < 2 || g > site.MaxGeneration {
		t.Fatalf("reinstall drew generation %d: want 2 to %d", g, site.MaxGeneration)
	}
	want224(t, s, "reinstall asked", form(g))
	say(s, site.StageInstall, "started")
	want224(t, s, "reinstalling, report lost", form(g))
	say(s, site.StageInstallDone, kept(g))
	if rec := readRec(t, state); rec.State != site.StateInstalled || rec.Generation != g || rec.ReinstallRequested {
		t.Fatalf("after a kept disk at the generation asked: %+v", rec)
	}
	want224(t, s, "reinstalled", "local")

	// The operator asks for another reinstall; an outcome for any other
	// generation (the one before, or one a tenant wrote on the disk ahead
	// of time) is ignored and logged: the reinstall stays asked.
	g2 := reinstall()
	for _, other := range []int{g, g2 + 1, site.MaxGeneration} {
		if other == g2 {
			continue
		}
		say(s, site.StageInstallDone, kept(other))
		say(s, site.StageInstallDone, "/dev/vda sha256="+lcSHA+" gen="+strconv.Itoa(other))
		if rec := readRec(t, state); !rec.ReinstallRequested || rec.Generation != g2 {
			t.Fatalf("after an outcome for generation %d (%d asked): %+v", other, g2, rec)
		}
	}
	if !strings.Contains(logs.String(), "generation "+strconv.Itoa(g2)+" is in force") {
		t.Errorf("the ignored reports were not logged:\n%s", logs)
	}
	want224(t, s, "reinstall still asked", form(g2))
	say(s, site.StageInstall, "started")
	say(s, site.StageInstallDone, "/dev/vda sha256="+lcSHA+" gen="+strconv.Itoa(g2))
	if rec := readRec(t, state); rec.State != site.StateInstalled || rec.Generation != g2 || rec.ReinstallRequested {
		t.Fatalf("after the install at %d: %+v", g2, rec)
	}

	// An old init, or a form written by hand (dhcp-config), names no
	// generation (or gen=0): as before, installed.
	reinstall()
	say(s, site.StageInstallDone, "/dev/vda sha256="+lcSHA)
	if rec := readRec(t, state); rec.State != site.StateInstalled || rec.ReinstallRequested {
		t.Fatalf("after a report without gen=: %+v", rec)
	}
}
