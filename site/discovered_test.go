package site

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDiscovered: a node nodes.yaml does not list is noted (first and
// last seen, count, what it said), one it lists (by MAC or serial) is
// not, and leaves the list once enrolled; the list is bounded, the least
// recently seen dropped first; it reaches discovered.json beside the
// state file, which ReadDiscovered reads and a new Site starts from.
func TestDiscovered(t *testing.T) {
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(nodes, []byte("nodes:\n  - mac: 52:54:00:00:00:01\n    hostname: known\n  - serial: 9ffefdef\n    hostname: pi\n"), 0o644)
	s := &Site{Nodes: nodes, StateFile: filepath.Join(dir, "state.json"), MaxDiscovered: 3}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	s.NoteSeen(Seen{MAC: "52:54:00:00:00:01", Kind: "ramboot-init", Asked: "dhcp offer", Last: at(0)})                      // listed by MAC
	s.NoteSeen(Seen{MAC: "dc:a6:32:00:00:01", Serial: "9FFEFDEF", Kind: "pi-bootloader", Asked: "dhcp offer", Last: at(0)}) // listed by serial
	s.NoteSeen(Seen{MAC: "DC:A6:32:01:36:C9", Serial: "1234ABCD", Model: "RPi4", Kind: "pi-bootloader", Asked: "dhcp offer", Last: at(1)})
	s.NoteSeen(Seen{MAC: "dc:a6:32:01:36:c9", Kind: "ramboot-init", IP: "192.0.2.120", Asked: "dhcp ack", Last: at(5)})
	s.NoteSeen(Seen{MAC: "not a mac", Kind: "pc-firmware", Last: at(5)})
	got := s.Discovered()
	if len(got) != 1 {
		t.Fatalf("discovered %+v; want the one unlisted node", got)
	}
	if g := got[0]; g.MAC != "dc:a6:32:01:36:c9" || g.Serial != "1234abcd" || g.Model != "RPi4" || g.Kind != "ramboot-init" ||
		g.IP != "192.0.2.120" || g.Asked != "dhcp ack" || !g.First.Equal(at(1)) || !g.Last.Equal(at(5)) || g.Count != 2 {
		t.Errorf("the node: %+v", g)
	}
	// Bounded: the fourth unlisted MAC drops the least recently seen.
	for i := 2; i <= 4; i++ {
		s.NoteSeen(Seen{MAC: fmt.Sprintf("52:54:00:00:01:%02x", i), Kind: "pc-firmware", Asked: "dhcp offer", Last: at(10 + i)})
	}
	got = s.Discovered()
	if len(got) != 3 || got[0].MAC != "52:54:00:00:01:04" || got[2].MAC != "52:54:00:00:01:02" {
		t.Errorf("bounded to 3, newest first: %+v", got)
	}
	// Written beside the state file, within flushEvery.
	path := filepath.Join(dir, DiscoveredName)
	var read []Seen
	for deadline := time.Now().Add(3 * flushEvery); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if read, _ = ReadDiscovered(path); len(read) == 3 {
			break
		}
	}
	if len(read) != 3 || read[0].MAC != "52:54:00:00:01:04" {
		t.Fatalf("%s: %+v", path, read)
	}
	// Enrolled: gone from the list at its next request.
	os.WriteFile(nodes, []byte("nodes:\n  - mac: 52:54:00:00:01:04\n    hostname: new\n"), 0o644)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	s.NoteSeen(Seen{MAC: "52:54:00:00:01:04", Kind: "pc-firmware", Asked: "dhcp offer", Last: at(20)})
	if got = s.Discovered(); len(got) != 2 || got[0].MAC == "52:54:00:00:01:04" {
		t.Errorf("after enrolling 52:54:00:00:01:04: %+v", got)
	}
	// A new Site (a restarted server) starts from the file.
	s2 := &Site{Nodes: nodes, StateFile: filepath.Join(dir, "state.json")}
	if got := s2.Discovered(); len(got) != 3 {
		t.Errorf("a new site starts from %d of the file's 3", len(got))
	}
	if _, err := ReadDiscovered(filepath.Join(dir, "none.json")); err != nil {
		t.Errorf("a missing file: %v", err)
	}
}
