package site

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Nodes the inventory does not know: the server notes each node it sees
// boot (NoteSeen) that has no nodes.yaml entry of its own (by MAC or Pi
// serial; the defaults do not count), and `ramboot node discovered` lists
// them from DiscoveredName beside the state file, so that `ramboot node
// enroll` can add one by its MAC or serial. The list is bounded
// (MaxDiscovered, the least recently seen dropped first), written at most
// once per flushEvery, and a node leaves it once nodes.yaml lists it.

// DiscoveredName is the file of nodes seen but not enrolled, in the state
// file's directory.
const DiscoveredName = "discovered.json"

// MaxDiscovered is the most nodes the list keeps, the default of
// Site.MaxDiscovered.
const MaxDiscovered = 1024

// Seen is a node seen booting that nodes.yaml does not list.
type Seen struct {
	MAC    string `json:"mac"`
	Serial string `json:"serial,omitempty"` // a Pi's, from option 97
	Model  string `json:"model,omitempty"`  // a Pi's model, from option 97 ("RPi4")
	Kind   string `json:"kind"`             // what asked: pi-bootloader, pc-firmware, ramboot-init, ...
	IP     string `json:"ip,omitempty"`     // the address the server saw it at, if any
	// Asked is what it asked for last ("dhcp discover", "dhcp request").
	Asked string    `json:"asked"`
	First time.Time `json:"first_seen"`
	Last  time.Time `json:"last_seen"`
	Count int       `json:"count"` // requests seen
}

// DiscoveredPath is the discovered list for a state file.
func DiscoveredPath(stateFile string) string {
	return filepath.Join(filepath.Dir(stateFile), DiscoveredName)
}

// ReadDiscovered reads a discovered list, most recently seen first; a
// missing file is an empty list.
func ReadDiscovered(path string) ([]Seen, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Nodes []Seen `json:"nodes"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w (the server rewrites it at the next node it sees)", path, err)
	}
	return f.Nodes, nil
}

// discovered is the list in memory.
type discovered struct {
	mu    sync.Mutex
	nodes map[string]*Seen // by MAC
	max   int
	file  flusher // discovered.json
}

// NoteSeen notes a node that asked to boot, unless nodes.yaml lists it by
// MAC or serial. Safe for concurrent use; it never waits for the disk.
func (s *Site) NoteSeen(n Seen) {
	mac, err := net.ParseMAC(n.MAC)
	if err != nil {
		return
	}
	n.MAC = mac.String()
	n.Serial = strings.ToLower(n.Serial)
	d := s.discoveredList()
	if inv := s.Inventory(); inv.Listed(mac) || (n.Serial != "" && inv.ListedSerial(n.Serial)) {
		d.forget(n.MAC)
		return
	}
	d.note(n)
}

// Discovered lists the nodes seen and not enrolled, most recently seen
// first.
func (s *Site) Discovered() []Seen { return s.discoveredList().list() }

func (s *Site) discoveredList() *discovered {
	s.discOnce.Do(func() {
		d := &discovered{nodes: map[string]*Seen{}, max: s.MaxDiscovered}
		if d.max <= 0 {
			d.max = MaxDiscovered
		}
		d.file = flusher{snap: func() any {
			return struct {
				Nodes []Seen `json:"nodes"`
			}{d.list()}
		}, log: func(msg string, args ...any) { s.log().Warn("discovered nodes "+msg, args...) }}
		if s.StateFile != "" {
			d.file.path = DiscoveredPath(s.StateFile)
			if old, err := ReadDiscovered(d.file.path); err == nil {
				for i := range old {
					if len(d.nodes) < d.max {
						o := old[i]
						d.nodes[o.MAC] = &o
					}
				}
			}
		}
		s.disc = d
	})
	return s.disc
}

func (d *discovered) note(n Seen) {
	now := n.Last
	if now.IsZero() {
		now = time.Now().UTC()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.nodes[n.MAC]; old != nil {
		if n.Serial == "" {
			n.Serial = old.Serial
		}
		if n.Model == "" {
			n.Model = old.Model
		}
		if n.IP == "" {
			n.IP = old.IP
		}
		n.First, n.Count = old.First, old.Count
	} else {
		if len(d.nodes) >= d.max {
			d.evictOldest()
		}
		n.First = now
	}
	n.Last = now
	n.Count++
	d.nodes[n.MAC] = &n
	d.file.schedule()
}

func (d *discovered) forget(mac string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nodes[mac] != nil {
		delete(d.nodes, mac)
		d.file.schedule()
	}
}

// evictOldest drops the least recently seen node (d.mu held). A linear
// scan: it runs only when the list is full and a new MAC comes.
func (d *discovered) evictOldest() {
	var oldest *Seen
	for _, n := range d.nodes {
		if oldest == nil || n.Last.Before(oldest.Last) {
			oldest = n
		}
	}
	if oldest != nil {
		delete(d.nodes, oldest.MAC)
	}
}

func (d *discovered) list() []Seen {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Seen, 0, len(d.nodes))
	for _, n := range d.nodes {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Last.Equal(out[j].Last) {
			return out[i].Last.After(out[j].Last)
		}
		return out[i].MAC < out[j].MAC
	})
	return out
}
