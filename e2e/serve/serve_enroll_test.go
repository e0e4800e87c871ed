package serve

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
)

// TestServeEnroll: a guest nodes.yaml does not list boots under
// `defaults: discover: none` and gets no answer from serve (dnsmasq gives
// it an address; it lands in the shell with no option 224); `ramboot node
// discovered` lists it; `ramboot node enroll` adds it to nodes.yaml, with
// the file's comment kept; the running serve picks the file up and the
// guest, booted again, gets its new entry's hostname and option 224.
func TestServeEnroll(t *testing.T) {
	lab.Skip(t)
	src, _ := cache.Image(t, "virt")
	bin := cache.Ramboot(t)
	l := lab.New(t)
	router := l.Peer(t, "192.0.2.2")
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	lab.WriteFile(t, nodes, "# rack 9: new nodes wait to be enrolled\ndefaults:\n  discover: none\n")
	srv := l.Serve(t, src, "--dhcp", "proxy", "--nodes", nodes) // its state (and discovered.json) beside --lease-file, in l.Dir
	files := []string{"--lease-file", filepath.Join(l.Dir, "leases.json"), "--nodes", nodes}
	ramboot := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, files...)...).CombinedOutput()
		return string(out), err
	}

	vm := l.Boot(t, src, "")
	vm.Expect(`224: no option 224: provisioning shell`, 120*time.Second)
	lab.WaitLog(t, srv, 0, 10*time.Second, "the unanswered DISCOVER", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("mac") == lab.GuestMAC && e.Str("event") == "ignored"
	})
	var out string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if out, _ = ramboot("node", "discovered"); strings.Contains(out, lab.GuestMAC) {
			break
		}
	}
	if !strings.Contains(out, lab.GuestMAC+"  -") || !strings.Contains(out, "ramboot-init") || !strings.Contains(out, "not answered: defaults: discover: none") {
		t.Fatalf("node discovered:\n%s", out)
	}
	vm.Stop()

	if out, err := ramboot("node", "enroll", lab.GuestMAC, "--hostname", "node-9", "--option224", "shell"); err != nil || !strings.Contains(out, "enrolled "+lab.GuestMAC+" as node-9") {
		t.Fatalf("node enroll: %v\n%s", err, out)
	}
	if data := string(lab.ReadFile(t, nodes)); !strings.HasPrefix(data, "# rack 9: new nodes wait to be enrolled\n") || !strings.Contains(data, "hostname: node-9") {
		t.Errorf("nodes.yaml after enroll:\n%s", data)
	}
	lab.WaitLog(t, srv, 0, 10*time.Second, "nodes.yaml reloaded with the new node", func(e lab.LogLine) bool {
		return e.Msg() == "inventory loaded" && e.Str("nodes") == "1"
	})

	vm = l.Boot(t, src, "")
	vm.Expect(`option 224 "shell" \(from 192\.0\.2\.1\)`, 120*time.Second)
	vm.Expect(`host: node-9`, 30*time.Second)
	vm.Expect(`224: option 224 says shell`, 30*time.Second)
	vm.ShellRoundTrip()
	vm.NoPanic()
	if out, _ := ramboot("node", "discovered"); strings.Contains(out, lab.GuestMAC) {
		// It leaves the list at its next request; the file follows within
		// two seconds.
		time.Sleep(3 * time.Second)
		if out, _ := ramboot("node", "discovered"); strings.Contains(out, lab.GuestMAC) {
			t.Errorf("the enrolled node is still listed:\n%s", out)
		}
	}
}
