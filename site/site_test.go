package site

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/testenv"
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

var (
	lcInstall  = "install:http://192.0.2.1:8080/img/debian.raw#sha256=" + lcSHA + "&disk=/dev/vda&hostname=web-1&gen=1"
	lcServerIP = net.IPv4(192, 0, 2, 1)
)

// lcSite is a site with nodes.yaml and a state file (state.json) in dir,
// opened as serve opens it; maxUnlisted is MaxUnlisted.
func lcSite(t *testing.T, dir, nodes string, maxUnlisted int) (*Site, *testenv.Buffer) {
	t.Helper()
	nf := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(nf, []byte(nodes), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	s := &Site{Nodes: nf, StateFile: filepath.Join(dir, "state.json"), MaxUnlisted: maxUnlisted, Log: slog.New(slog.NewTextHandler(logs, nil))}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := s.OpenState(); err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// note is mac's report as the server hands it on.
func note(s *Site, mac, stage, detail string) error {
	hw, _ := net.ParseMAC(mac)
	return s.NoteReport(hw, lcServerIP, stage, detail)
}

func say(s *Site, stage, detail string) { note(s, lcMAC, stage, detail) }

// option224 is what the site hands mac now, as DHCP asks it.
func option224(t *testing.T, s *Site, mac string) string {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	m, ok, err := s.Lookup(hw, "", lcServerIP)
	if err != nil || !ok {
		t.Fatalf("lookup %s: %v, %v", mac, ok, err)
	}
	return m.Option224
}

func want224(t *testing.T, s *Site, step, want string) {
	t.Helper()
	if got := option224(t, s, lcMAC); got != want {
		t.Fatalf("%s: option 224 = %q, want %q", step, got, want)
	}
}

func readRec(t *testing.T, path string) NodeState {
	t.Helper()
	st, err := ReadState(path)
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

// TestLifecycleLookupNotBlockedByWrite: while a report's write waits for
// the state file's lock (held here as `ramboot node` would hold it, or as
// a slow disk holds an fsync), DHCP lookups still answer at once from the
// state in force; the write lands once the lock is free, and the next
// lookup sees it.
func TestLifecycleLookupNotBlockedByWrite(t *testing.T) {
	dir := t.TempDir()
	s, _ := lcSite(t, dir, lcNodes(lcSHA), 0)
	state := filepath.Join(dir, "state.json")
	say(s, StageInstall, "started")
	want224(t, s, "installing", lcInstall)

	unlock, err := lockState(state)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		say(s, StageInstallDone, "/dev/vda sha256="+lcSHA)
		close(done)
	}()
	// The writer holds the lifecycle's lock while it waits for the file's.
	lc := s.lc.Load()
	for deadline := time.Now().Add(5 * time.Second); lc.mu.TryLock(); {
		lc.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the report's write never started")
		}
		time.Sleep(time.Millisecond)
	}
	var slowest time.Duration
	for i := 0; i < 20; i++ {
		start := time.Now()
		got := option224(t, s, lcMAC)
		d := time.Since(start)
		slowest = max(slowest, d)
		if d > 100*time.Millisecond {
			t.Fatalf("lookup %d took %v while a write waited for the lock", i, d)
		}
		if got != lcInstall {
			t.Fatalf("lookup %d during the write: option 224 %q, want the state in force (%q)", i, got, lcInstall)
		}
	}
	select {
	case <-done:
		t.Fatal("the report was written while another process held the state file's lock")
	default:
	}
	t.Logf("20 lookups during a stuck write: slowest %v", slowest)
	unlock()
	select {
	case <-done:
	case <-time.After(StateLockTimeout):
		t.Fatal("the write did not finish once the lock was free")
	}
	if rec := readRec(t, state); rec.State != StateInstalled {
		t.Fatalf("after the lock was freed: %+v", rec)
	}
	want224(t, s, "installed, written", "local")
}

// TestLifecycleUnlistedBounded: the defaults' install: covers every MAC,
// so any host can make up MACs and report installs under them: their
// records are bounded (the oldest not installed dropped first, each drop
// logged), while every node nodes.yaml lists keeps its record.
func TestLifecycleUnlistedBounded(t *testing.T) {
	dir := t.TempDir()
	nodes := `defaults:
  install: {image: "http://{{.Server}}:8080/img/debian.raw", sha256: none}
nodes:
  - mac: ` + lcMAC + `
    hostname: web-1
  - mac: 52:54:00:12:34:62
    hostname: web-2
`
	s, logs := lcSite(t, dir, nodes, 4) // --state-max-unlisted 4
	state := filepath.Join(dir, "state.json")
	tell := func(mac, stage string) {
		note(s, mac, stage, "/dev/vda")
	}
	made := func(i int) string { return fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff) }

	tell(lcMAC, StageInstallDone)
	tell("52:54:00:12:34:62", StageInstall)
	tell(made(0), StageInstallDone) // an unlisted node that did install
	for i := 1; i <= 40; i++ {
		tell(made(i), StageInstall)
	}
	st, err := ReadState(state)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		lcMAC:               StateInstalled,
		"52:54:00:12:34:62": StateInstalling,
		made(0):             StateInstalled, // installed: dropped last
		made(38):            StateInstalling,
		made(39):            StateInstalling,
		made(40):            StateInstalling,
	}
	if len(st.Nodes) != len(want) {
		t.Errorf("%d records, want %d (2 listed + 4 others): %v", len(st.Nodes), len(want), st.Sorted())
	}
	for mac, state := range want {
		if n := st.Nodes[mac]; n == nil || n.State != state {
			t.Errorf("%s: record %+v, want %s", mac, n, state)
		}
	}
	if got := strings.Count(logs.String(), "install state record dropped"); got != 37 {
		t.Errorf("%d drops logged, want 37:\n%s", got, logs)
	}
	// The site's view is the file's.
	if got := len(s.lc.Load().snap.Load().st.Nodes); got != len(want) {
		t.Errorf("state in force has %d records, want %d", got, len(want))
	}
	// Only installed others left: the oldest of them goes.
	for i := 41; i <= 44; i++ {
		tell(made(i), StageInstallDone)
	}
	st, _ = ReadState(state)
	if st.Nodes[made(0)] != nil || st.Nodes[lcMAC] == nil || st.Nodes["52:54:00:12:34:62"] == nil || st.Nodes[made(44)] == nil {
		t.Errorf("after four more installed others: %v", st.Sorted())
	}
	if n := len(st.Nodes); n != 6 {
		t.Errorf("%d records, want 6", n)
	}
}

// TestMakeRoomListed: records of listed nodes never count against the
// bound, however many there are.
func TestMakeRoomListed(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("defaults:\n  install: {image: \"http://x/i.raw\", sha256: none}\nnodes:\n")
	st := &State{Nodes: map[string]*NodeState{}}
	for i := 0; i < 10; i++ {
		mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}.String()
		fmt.Fprintf(&b, "  - mac: %s\n", mac)
		st.Nodes[mac] = &NodeState{State: StateInstalling}
	}
	s, _ := lcSite(t, dir, b.String(), 0)
	if dropped := makeRoom(st, s.Inventory(), 1); len(dropped) != 0 || len(st.Nodes) != 10 {
		t.Fatalf("listed nodes' records dropped: %v", dropped)
	}
	st.Nodes["02:00:00:00:00:01"] = &NodeState{State: StateFailed}
	if dropped := makeRoom(st, s.Inventory(), 1); len(dropped) != 1 || dropped[0] != "02:00:00:00:00:01" || len(st.Nodes) != 10 {
		t.Fatalf("dropped %v, left %d", dropped, len(st.Nodes))
	}
}

// Deleting the state file while serve runs is an empty state at the next
// lookup (the README: deleting it reinstalls every node that has no
// install record on its disk), not the state read before.
func TestLifecycleStateFileDeleted(t *testing.T) {
	dir := t.TempDir()
	s, _ := lcSite(t, dir, lcNodes(lcSHA), 0)
	say(s, StageInstallDone, "/dev/vda sha256="+lcSHA)
	want224(t, s, "installed", "local")
	if err := os.Remove(filepath.Join(dir, "state.json")); err != nil {
		t.Fatal(err)
	}
	if got := option224(t, s, lcMAC); !strings.HasPrefix(got, "install:") {
		t.Fatalf("after the state file was deleted: option 224 = %q, want the install form", got)
	}
}

// With no state file a node with install: gets the install form at every
// boot and its reports record nothing; with no nodes.yaml nothing applies.
func TestSiteWithoutState(t *testing.T) {
	dir := t.TempDir()
	nf := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(nf, []byte(lcNodes(lcSHA)), 0o644); err != nil {
		t.Fatal(err)
	}
	var loaded int
	s := &Site{Nodes: nf, OnLoad: func(inv *inventory.Inventory) { loaded = len(inv.Nodes) }}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := s.OpenState(); err != nil || s.StatePath() != "" {
		t.Fatalf("OpenState with no StateFile: %q, %v", s.StatePath(), err)
	}
	if loaded != 3 {
		t.Errorf("OnLoad saw %d nodes, want 3", loaded)
	}
	want224(t, s, "new", lcInstall)
	if err := note(s, lcMAC, StageInstallDone, "/dev/vda sha256="+lcSHA+" gen=1"); err != nil {
		t.Fatal(err)
	}
	want224(t, s, "after install done, no state kept", lcInstall)
	if left, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(left) > 0 {
		t.Fatalf("a state file was written: %v", left)
	}

	// A bad nodes.yaml leaves the one in force.
	if err := os.WriteFile(nf, []byte("nodes: [{mac: nonsense}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Fatal("a bad nodes.yaml was taken")
	}
	want224(t, s, "after a bad nodes.yaml", lcInstall)

	hw, _ := net.ParseMAC(lcMAC)
	if m, ok, err := (&Site{}).Lookup(hw, "", lcServerIP); ok || err != nil {
		t.Fatalf("no nodes.yaml: %+v, %v, %v", m, ok, err)
	}
}
