package server

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/ramboot/ramboot/server/dhcp"
)

// TestDHCPNotesDiscovered: a Pi nodes.yaml does not list is noted for
// `ramboot node discovered` when serve answers its DHCP, with the serial
// and model its option 97 gave; a listed one is not.
func TestDHCPNotesDiscovered(t *testing.T) {
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(nodes, []byte("nodes:\n  - mac: "+piMAC+"\n    hostname: pi-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Root: dir, Nodes: nodes}
	if err := s.openSite(); err != nil {
		t.Fatal(err)
	}
	dhcpSeen(s, piMAC, piSerial)
	dhcpSeen(s, "dc:a6:32:01:36:c9", "1234abcd")
	got := s.ownSite().Discovered()
	if len(got) != 1 || got[0].MAC != "dc:a6:32:01:36:c9" || got[0].Serial != "1234abcd" || got[0].Model != "RPi4" ||
		got[0].Kind != "pi-bootloader" || got[0].Asked != "dhcp offer" {
		t.Errorf("discovered %+v; want the unlisted Pi only, with its serial and model", got)
	}
}

// TestDiscoverNone: with defaults: discover: none an unlisted node's
// DISCOVER gets no answer (it is noted for node discovered all the
// same), and a listed one's still does.
func TestDiscoverNone(t *testing.T) {
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(nodes, []byte("defaults:\n  discover: none\nnodes:\n  - mac: "+lcMAC+"\n    option224: shell\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Root: dir, Nodes: nodes, ServerIP: net.IPv4(192, 0, 2, 1)}
	if err := s.openSite(); err != nil {
		t.Fatal(err)
	}
	ds := &dhcp.Server{Mode: dhcp.Proxy, ServerIP: s.ServerIP, Decide: s.decide}
	discover := func(mac string) *dhcpv4.DHCPv4 {
		hw, _ := net.ParseMAC(mac)
		req, _ := dhcpv4.NewDiscovery(hw, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(dhcp.RambootVendorClass)))
		resp, _ := ds.Handle(req)
		return resp
	}
	if discover(lcMAC) == nil {
		t.Error("the listed node got no answer")
	}
	if resp := discover("52:54:00:99:99:99"); resp != nil {
		t.Errorf("an unlisted node got %s under discover: none", resp.Summary())
	}
	if got := s.ownSite().Discovered(); len(got) != 1 || got[0].MAC != "52:54:00:99:99:99" || !strings.Contains(got[0].Asked, "not answered") {
		t.Errorf("discovered %+v; want the unanswered node", got)
	}
}
