package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPreflightState: --check names the install state file serve will use
// (what `ramboot node` must read too), refuses a corrupt one, and, when
// the inventory has installs, a state directory that is not there.
func TestPreflightState(t *testing.T) {
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(nodes, []byte(lcNodes(lcSHA)), 0o644)
	s := &Server{Root: filepath.Join(dir, "tree"), Nodes: nodes}
	check := func() *Preflight { p := &Preflight{}; s.preflightState(p); return p }

	p := check()
	want := "install state: " + filepath.Join(dir, "state.json") + " (0 records"
	if len(p.Problems) > 0 || len(p.Summary) != 1 || !strings.HasPrefix(p.Summary[0], want) {
		t.Fatalf("summary %q, problems %v; want %q", p.Summary, p.Problems, want)
	}
	os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"nodes": {`), 0o644)
	if p := check(); len(p.Problems) != 1 || !strings.Contains(p.Err().Error(), "corrupt") {
		t.Fatalf("corrupt state: %v", p.Problems)
	}
	s.StateFile = filepath.Join(dir, "missing", "state.json")
	if p := check(); len(p.Problems) != 1 || !strings.Contains(p.Err().Error(), "does not exist") {
		t.Fatalf("no state directory: %v", p.Problems)
	}
	// Without installs in nodes.yaml, nothing is ever written: no problem.
	os.WriteFile(nodes, []byte("nodes:\n  - mac: "+lcMAC+"\n    option224: shell\n"), 0o644)
	if p := check(); len(p.Problems) != 0 {
		t.Fatalf("no installs: %v", p.Problems)
	}
	// No inventory, no state file: nothing said.
	p = &Preflight{}
	(&Server{Root: s.Root}).preflightState(p)
	if len(p.Summary)+len(p.Problems) != 0 {
		t.Fatalf("no inventory: %+v", p)
	}
}
