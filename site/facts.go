package site

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ramboot/ramboot/internal/report"
)

// A node's hardware facts, as its init reported them (the server takes
// them from the node's own address only): the latest per node, bounded
// (MaxFacts, the oldest dropped first), written to FactsName beside the
// state file for `ramboot node show`.

// FactsName is the file of the nodes' facts, in the state file's directory.
const FactsName = "facts.json"

// MaxFacts is the most nodes whose facts are kept.
const MaxFacts = 4096

// FactsRecord is a node's latest facts, when and from where they came.
type FactsRecord struct {
	report.Facts
	At time.Time `json:"at"`
	IP string    `json:"ip,omitempty"`
}

// FactsPath is the facts file for a state file.
func FactsPath(stateFile string) string {
	return filepath.Join(filepath.Dir(stateFile), FactsName)
}

// ReadFacts reads a facts file, by MAC; a missing file is none.
func ReadFacts(path string) (map[string]FactsRecord, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return map[string]FactsRecord{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Nodes []FactsRecord `json:"nodes"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w (the server rewrites it at the next node's facts)", path, err)
	}
	out := make(map[string]FactsRecord, len(f.Nodes))
	for _, r := range f.Nodes {
		out[r.MAC] = r
	}
	return out, nil
}

type factsStore struct {
	mu    sync.Mutex
	nodes map[string]FactsRecord
	file  flusher
}

// NoteFacts keeps f (already checked: report.Facts.Check) as the latest
// facts of its node, seen at ip.
func (s *Site) NoteFacts(f report.Facts, ip string) {
	st := s.factsList()
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.nodes[f.MAC]; !ok && len(st.nodes) >= MaxFacts {
		var oldest string
		for k, r := range st.nodes {
			if oldest == "" || r.At.Before(st.nodes[oldest].At) {
				oldest = k
			}
		}
		delete(st.nodes, oldest)
	}
	st.nodes[f.MAC] = FactsRecord{Facts: f, At: time.Now().UTC(), IP: ip}
	st.file.schedule()
}

// Facts is the latest facts of the node with this MAC.
func (s *Site) Facts(mac string) (FactsRecord, bool) {
	st := s.factsList()
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.nodes[mac]
	return r, ok
}

// AllFacts is every node's latest facts, by MAC.
func (s *Site) AllFacts() []FactsRecord {
	st := s.factsList()
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]FactsRecord, 0, len(st.nodes))
	for _, r := range st.nodes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	return out
}

func (s *Site) factsList() *factsStore {
	s.factsOnce.Do(func() {
		st := &factsStore{nodes: map[string]FactsRecord{}}
		st.file = flusher{snap: func() any {
			return struct {
				Nodes []FactsRecord `json:"nodes"`
			}{s.AllFacts()}
		}, log: func(msg string, args ...any) { s.log().Warn("node facts "+msg, args...) }}
		if s.StateFile != "" {
			st.file.path = FactsPath(s.StateFile)
			if old, err := ReadFacts(st.file.path); err == nil {
				for k, r := range old {
					if len(st.nodes) < MaxFacts {
						st.nodes[k] = r
					}
				}
			}
		}
		s.facts = st
	})
	return s.facts
}
