package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/site"
)

const nodeSHA = "3f0c8a2b6f3c5d1e9a7b4c2d0e8f6a4b2c0d9e7f5a3b1c8d6e4f2a0b9c7d5e3f"

// nodeTree writes nodes.yaml, a serve config and a state file with web-1
// installed and web-2 failed, as serve would have recorded them.
func nodeTree(t *testing.T) (dir, state, nodes, config string) {
	t.Helper()
	dir = t.TempDir()
	nodes = filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(nodes, []byte(`nodes:
  - mac: 52:54:00:12:34:61
    hostname: web-1
    install: {image: "http://{{.Server}}:8080/img/debian.raw", sha256: `+nodeSHA+`}
  - mac: 52:54:00:12:34:62
    hostname: web-2
    install: {image: "http://{{.Server}}:8080/img/debian.raw", sha256: `+nodeSHA+`}
  - mac: 52:54:00:12:34:63
    hostname: web-3
    install: {image: "http://{{.Server}}:8080/img/debian.raw", sha256: none}
  - mac: 52:54:00:12:34:64
    hostname: nfs-1
    option224: shell
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	config = filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(config, []byte("root: "+filepath.Join(dir, "tree")+"\ninterface: lo\nnodes: "+nodes+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state = filepath.Join(dir, "state.json")
	at := time.Date(2026, 11, 30, 17, 2, 11, 0, time.UTC)
	err := site.UpdateState(state, func(st *site.State) error {
		st.Nodes["52:54:00:12:34:61"] = &site.NodeState{Name: "web-1", State: site.StateInstalled, SHA256: "1111111111111111111111111111111111111111111111111111111111111111", Since: at}
		st.Nodes["52:54:00:12:34:62"] = &site.NodeState{Name: "web-2", State: site.StateFailed, Since: at, Detail: "disk too small"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, state, nodes, config
}

func TestNodeReinstall(t *testing.T) {
	_, state, nodes, config := nodeTree(t)
	code, out, errb := runCLI(t, "node", "reinstall", "web-1", "--config", config)
	if code != 0 || !strings.Contains(out, "web-1 (52:54:00:12:34:61): installed; reinstall asked (install generation ") || !strings.Contains(out, ", after 1)") {
		t.Fatalf("reinstall: %d %q %q", code, out, errb)
	}
	st, err := site.ReadState(state)
	if err != nil {
		t.Fatal(err)
	}
	// The generation is drawn (2 to MaxGeneration), and the output names it.
	if n := st.Nodes["52:54:00:12:34:61"]; !n.ReinstallRequested || n.State != site.StateInstalled || !n.WantsInstall() || n.Generation < 2 ||
		!strings.Contains(out, fmt.Sprintf("(install generation %d, after 1)", n.Generation)) {
		t.Fatalf("after reinstall: %+v", n)
	}
	if n := st.Nodes["52:54:00:12:34:62"]; n.ReinstallRequested || n.Detail != "disk too small" {
		t.Fatalf("another node changed: %+v", n)
	}
	// Asked again, by MAC, with the state file named: nothing changes.
	before, _ := os.ReadFile(state)
	code, out, _ = runCLI(t, "node", "reinstall", "52-54-00-12-34-61", "--state-file", state)
	if code != 0 || !strings.Contains(out, "asked already") {
		t.Fatalf("again: %d %q", code, out)
	}
	if after, _ := os.ReadFile(state); string(after) != string(before) {
		t.Fatal("asking again rewrote the file")
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"reinstall", "web-2", "--state-file", state}, 0, "failed, not installed; reinstall asked (install generation "},
		{[]string{"reinstall", "web-3", "--state-file", state, "--nodes", nodes}, 0, "no install recorded; reinstall asked (install generation "},
		{[]string{"reinstall", "nfs-1", "--state-file", state, "--nodes", nodes}, 1, "has no install:"},
		{[]string{"reinstall", "web-9", "--state-file", state}, 1, `node "web-9": no such node in ` + state + " (pass --nodes"},
		{[]string{"reinstall", "--state-file", state}, 2, "name the node"},
		{[]string{"reinstall", "web-1"}, 2, "which state file?"},
		{[]string{"reboot", "web-1", "--state-file", state}, 2, `unknown action "reboot"`},
	} {
		code, out, errb := runCLI(t, append([]string{"node"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out+errb, tc.out) {
			t.Errorf("%v: %d %q %q, want %d %q", tc.args, code, out, errb, tc.code, tc.out)
		}
	}
	// A node not installed (its report may have been lost while its disk
	// carries the install) and one with no record get a new generation
	// too: only a new one re-flashes a disk.
	st, err = site.ReadState(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"52:54:00:12:34:62", "52:54:00:12:34:63"} {
		if n := st.Nodes[k]; n == nil || !n.ReinstallRequested || n.Generation < 2 || !n.WantsInstall() {
			t.Errorf("%s after reinstall: %+v", k, n)
		}
	}
	if n := st.Nodes["52:54:00:12:34:63"]; n != nil && (n.Name != "web-3" || n.State != "") {
		t.Errorf("web-3's new record: %+v", n)
	}
	// A corrupt state file is an error naming it, and is left as it is.
	if err := os.WriteFile(state, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errb = runCLI(t, "node", "reinstall", "web-1", "--config", config)
	if code != 1 || !strings.Contains(errb, state) || !strings.Contains(errb, "corrupt") {
		t.Fatalf("corrupt: %d %q", code, errb)
	}
	if data, _ := os.ReadFile(state); string(data) != "{" {
		t.Fatalf("the corrupt file was rewritten: %q", data)
	}
}

func TestNodeList(t *testing.T) {
	_, state, nodes, config := nodeTree(t)
	code, out, errb := runCLI(t, "node", "list", "--config", config)
	if code != 0 {
		t.Fatalf("list: %d %q", code, errb)
	}
	want := []string{
		`NAME +MAC +STATE +GEN +SINCE +NOTE`,
		`web-1 +52:54:00:12:34:61 +installed +1 +2026-11-30T17:02:11Z +nodes.yaml has another image \(reinstall to apply it\)`,
		`web-2 +52:54:00:12:34:62 +failed +1 +2026-11-30T17:02:11Z`,
		`web-3 +52:54:00:12:34:63 +new +1 +- +installs at its next network boot`,
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("list:\n%s", out)
	}
	for i, w := range want {
		if !regexp.MustCompile("^" + w + " *$").MatchString(lines[i]) {
			t.Errorf("line %d: %q, want %q", i, lines[i], w)
		}
	}
	// Without the inventory: the records only.
	_, out, _ = runCLI(t, "node", "list", "--state-file", state)
	if strings.Contains(out, "web-3") || !strings.Contains(out, "web-2") {
		t.Fatalf("list without nodes.yaml:\n%s", out)
	}
	_ = nodes
}

// TestNodeDiscoveredEnroll: node discovered lists what serve wrote of the
// nodes nodes.yaml does not list; node enroll adds one by the serial it
// was seen with (its MAC from the list) or by MAC, keeping the file's
// other entries, and refuses a clash without touching the file.
func TestNodeDiscoveredEnroll(t *testing.T) {
	_, state, nodes, config := nodeTree(t)
	code, out, _ := runCLI(t, "node", "discovered", "--config", config)
	if code != 0 || !strings.Contains(out, "no nodes seen") {
		t.Fatalf("discovered, none: %d %q", code, out)
	}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s := &site.Site{Nodes: nodes, StateFile: state}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	s.NoteSeen(site.Seen{MAC: "dc:a6:32:01:36:c9", Serial: "1234abcd", Model: "RPi4", Kind: "pi-bootloader", Asked: "dhcp offer", Last: at})
	s.NoteSeen(site.Seen{MAC: "52:54:00:12:34:70", Kind: "pc-firmware", Asked: "dhcp offer", Last: at.Add(time.Second)})
	var listed bool
	for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline) && !listed; time.Sleep(100 * time.Millisecond) {
		_, out, _ = runCLI(t, "node", "discovered", "--config", config)
		listed = strings.Contains(out, "52:54:00:12:34:70")
	}
	if !regexp.MustCompile(`(?m)^52:54:00:12:34:70 +- +- +pc-firmware .*\n^dc:a6:32:01:36:c9 +1234abcd +RPi4 +pi-bootloader +- +2026-12-07T12:00:00Z`).MatchString(out) {
		t.Fatalf("node discovered:\n%s", out)
	}
	code, out, errb := runCLI(t, "node", "enroll", "1234ABCD", "--hostname", "pi-r2-07", "--option224", "shell", "--config", config)
	if code != 0 || !strings.Contains(out, "enrolled dc:a6:32:01:36:c9 as pi-r2-07") {
		t.Fatalf("enroll by serial: %d %q %q", code, out, errb)
	}
	after, _ := os.ReadFile(nodes)
	if !strings.HasPrefix(strings.ReplaceAll(string(after), "\n", ""), "nodes:  - mac: 52:54:00:12:34:61    hostname: web-1") ||
		!strings.Contains(string(after), "  - mac: dc:a6:32:01:36:c9\n    serial: 1234abcd\n    hostname: pi-r2-07\n    option224: shell\n") {
		t.Errorf("nodes.yaml after enroll:\n%s", after)
	}
	code, _, errb = runCLI(t, "node", "enroll", "52:54:00:12:34:70", "--hostname", "web-1", "--config", config)
	if now, _ := os.ReadFile(nodes); code == 0 || !strings.Contains(errb, "web-1") || string(now) != string(after) {
		t.Errorf("enroll with a hostname taken: %d %q; the file changed: %v", code, errb, string(now) != string(after))
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "enroll", "ffffffff", "--hostname", "x", "--config", config}, "ramboot node discovered lists them"},
		{[]string{"node", "enroll", "52:54:00:12:34:70", "--config", config}, "--hostname NAME"},
		{[]string{"node", "list", "--hostname", "x", "--config", config}, "are for node enroll"},
		{[]string{"node", "enroll", "52:54:00:12:34:70", "--hostname", "x", "--state-file", state}, "which nodes.yaml"},
	} {
		if code, _, errb := runCLI(t, tc.args...); code == 0 || !strings.Contains(errb, tc.want) {
			t.Errorf("%v: %d %q; want an error saying %q", tc.args, code, errb, tc.want)
		}
	}
}

// TestNodeShow: node show prints a node's entry, install state and the
// facts serve wrote for it, as text and as JSON; an unknown name is an
// error saying what to give.
func TestNodeShow(t *testing.T) {
	_, state, nodes, config := nodeTree(t)
	s := &site.Site{Nodes: nodes, StateFile: state}
	s.NoteFacts(report.Facts{MAC: "52:54:00:12:34:61", Model: "QEMU Standard PC (Q35 + ICH9, 2009)", CPU: "QEMU Virtual CPU", Cores: 2, MemoryBytes: 2 << 30,
		Disks: []report.Disk{{Name: "vda", Bytes: 8 << 30, Serial: "disk-1"}}, NICs: []report.NIC{{Name: "eth0", MAC: "52:54:00:12:34:61", Driver: "virtio_net"}}}, "192.0.2.61")
	var out string
	for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, out, _ = runCLI(t, "node", "show", "web-1", "--config", config); strings.Contains(out, "disk vda") {
			break
		}
	}
	for _, want := range []string{"hostname  ", "web-1", "nodes.yaml  ", "line 2", "install  ", "installed since 2026-11-30T17:02:11Z",
		"facts from", "192.0.2.61", "QEMU Standard PC", "2 cores", "memory", "2048 MB", "disk vda", "8.6 GB", "disk-1", "nic eth0", "virtio_net"} {
		if !strings.Contains(out, want) {
			t.Errorf("node show web-1 lacks %q:\n%s", want, out)
		}
	}
	code, out, errb := runCLI(t, "node", "show", "52-54-00-12-34-61", "--json", "--config", config)
	if code != 0 || !strings.Contains(out, `"memory_bytes": 2147483648`) || !strings.Contains(out, `"hostname": "web-1"`) || !strings.Contains(out, `"state": "installed"`) {
		t.Errorf("node show --json: %d %q %q", code, out, errb)
	}
	if code, out, _ := runCLI(t, "node", "show", "nfs-1", "--config", config); code != 0 || !strings.Contains(out, "none reported yet") {
		t.Errorf("a node without facts: %d %q", code, out)
	}
	if code, _, errb := runCLI(t, "node", "show", "nosuch", "--config", config); code == 0 || !strings.Contains(errb, "give its MAC") {
		t.Errorf("an unknown node: %d %q", code, errb)
	}
}

// TestNodePower: node power runs each node's power: entry (here the
// command driver), prints and logs one line per node, goes on past a
// node that fails and says which; reinstall --power-cycle cycles the
// node once its reinstall is recorded.
func TestNodePower(t *testing.T) {
	dir, _, nodes, config := nodeTree(t)
	script := filepath.Join(dir, "pdu")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> "+filepath.Join(dir, "calls")+"\n[ \"$2\" = web-2 ] && { echo 'outlet 7 does not answer' >&2; exit 1; }\necho on\n"), 0o755)
	data, _ := os.ReadFile(nodes)
	os.WriteFile(nodes, []byte("defaults:\n  power: {driver: command, command: "+script+"}\n"+string(data)), 0o644)
	code, out, errb := runCLI(t, "node", "power", "cycle", "web-1", "52:54:00:12:34:62", "--config", config)
	if code != 1 || !strings.Contains(out, "web-1: power cycle via command "+script+": on (") ||
		!strings.Contains(out, "web-2: power cycle via command "+script+" failed after ") || !strings.Contains(out, "outlet 7 does not answer") ||
		!strings.Contains(errb, "1 of 2 failed: web-2") {
		t.Fatalf("node power cycle: %d\n%s\n%s", code, out, errb)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "power.log")); strings.Count(string(log), "\n") != 2 || !strings.Contains(string(log), "web-1: power cycle") {
		t.Errorf("power.log:\n%s", log)
	}
	code, out, _ = runCLI(t, "node", "reinstall", "web-1", "--power-cycle", "--config", config)
	if calls, _ := os.ReadFile(filepath.Join(dir, "calls")); code != 0 || !strings.Contains(out, "reinstall asked") || !strings.Contains(out, "web-1: power cycle via command") ||
		strings.Count(string(calls), "cycle web-1 52:54:00:12:34:61") != 2 {
		t.Errorf("reinstall --power-cycle: %d\n%s\ncalls:\n%s", code, out, calls)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "power", "reboot", "web-1", "--config", config}, "want on, off, cycle or status"},
		{[]string{"node", "power", "on", "--config", config}, "say on, off, cycle or status"},
		{[]string{"node", "list", "--power-cycle", "--config", config}, "--power-cycle is for node reinstall"},
		{[]string{"node", "power", "on", "nosuch", "--config", config}, "1 of 1 failed"},
	} {
		if code, _, errb := runCLI(t, tc.args...); code == 0 || !strings.Contains(errb, tc.want) {
			t.Errorf("%v: %d %q; want %q", tc.args, code, errb, tc.want)
		}
	}
}
