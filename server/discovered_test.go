package server

import (
	"os"
	"path/filepath"
	"testing"
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
