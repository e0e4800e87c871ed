package server

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNeighWarning: a /24 fits the default table of 1024; a /22 (1022
// hosts) does not, and the warning says which sysctl to raise and to
// what; a bigger inventory than the network counts too.
func TestNeighWarning(t *testing.T) {
	_, n24, _ := net.ParseCIDR("192.0.2.0/24")
	_, n22, _ := net.ParseCIDR("10.0.0.0/22")
	if h := segmentHosts(n24); h != 254 || neighWarning(h, 1024, "eth1") != "" {
		t.Errorf("/24: %d hosts, warning %q", h, neighWarning(h, 1024, "eth1"))
	}
	w := neighWarning(segmentHosts(n22), 1024, "eth1")
	for _, want := range []string{"eth1: room for 1022 hosts", "holds 1024", "net.ipv4.neigh.default.gc_thresh3 = 2048", "net.ipv4.neigh.default.gc_thresh2 = 1024", "/etc/sysctl.d/"} {
		if !strings.Contains(w, want) {
			t.Errorf("/22 warning lacks %q: %s", want, w)
		}
	}
	dir := t.TempDir()
	old := neighThresh3
	t.Cleanup(func() { neighThresh3 = old })
	neighThresh3 = filepath.Join(dir, "gc_thresh3")
	os.WriteFile(neighThresh3, []byte("1024\n"), 0o644)
	s := &Server{Interface: "eth1"}
	var p Preflight
	s.preflightNeigh(&p, &net.IPNet{IP: net.IPv4(192, 0, 2, 1), Mask: n24.Mask}, 900)
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "room for 900 hosts") {
		t.Errorf("a /24 with 900 nodes in nodes.yaml: %q", p.Warnings)
	}
	p = Preflight{}
	s.preflightNeigh(&p, &net.IPNet{IP: net.IPv4(192, 0, 2, 1), Mask: n24.Mask}, 10)
	if len(p.Warnings) != 0 {
		t.Errorf("a /24 with 10 nodes: %q", p.Warnings)
	}
}
