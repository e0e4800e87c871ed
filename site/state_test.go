package site

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadState: a state file either is refused or reads back the same
// after the server writes it out.
func FuzzReadState(f *testing.F) {
	f.Add([]byte(`{"nodes": {"52:54:00:12:34:61": {"name": "web-1", "state": "installed", "sha256": "` + lcSHA + `", "since": "2026-11-30T17:02:11Z", "reinstall_requested": true}}}`))
	f.Add([]byte(`{"nodes": {"52:54:00:12:34:62": {"state": "", "since": "0001-01-01T00:00:00Z", "reinstall_requested": true}}}`))
	f.Add([]byte(`{"nodes": {"52:54:00:12:34:63": {"state": "installing", "since": "2026-11-30T17:02:11Z", "generation": 7}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		p := filepath.Join(t.TempDir(), "state.json")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := ReadState(p)
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		if err := writeState(p, st); err != nil {
			t.Fatal(err)
		}
		again, err := ReadState(p)
		if err != nil {
			t.Fatalf("written back, then: %v", err)
		}
		a, _ := json.Marshal(st)
		b, _ := json.Marshal(again)
		if !bytes.Equal(a, b) {
			t.Fatalf("round trip:\n%s\n%s", a, b)
		}
	})
}

// TestUpdateStateLocked: writers that each add a record at the same time
// (the server and `ramboot node`, or two servers sharing the file) lose
// none: each reads the file under the lock before it writes.
func TestUpdateStateLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	const n = 16
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}.String()
			errs <- UpdateState(p, func(st *State) error {
				st.Nodes[mac] = &NodeState{State: StateInstalled}
				return nil
			})
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, err := ReadState(p)
	if err != nil || len(st.Nodes) != n {
		t.Fatalf("%d of %d records: %v", len(st.Nodes), n, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// Drawn generations are from 2 to MaxGeneration and never the one before.
func TestNewGeneration(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		g, err := NewGeneration(5)
		if err != nil || g < 2 || g > MaxGeneration || g == 5 {
			t.Fatalf("NewGeneration(5) = %d, %v", g, err)
		}
		seen[g] = true
	}
	if len(seen) < 190 {
		t.Errorf("200 draws gave %d different generations: not drawn at random", len(seen))
	}
}

func TestReportedGen(t *testing.T) {
	for _, tc := range []struct {
		detail string
		gen    int
		ok     bool
	}{
		{"/dev/vda sha256=" + lcSHA + " gen=3", 3, true},
		{"/dev/vda sha256=none gen=12 already installed at generation 12 on 2026-12-07T13:00:00Z: the disk is not written", 12, true},
		{"/dev/vda sha256=" + lcSHA, 0, false},
		{"gen=x", 0, false},
		{"gen=-1", 0, false},
		{"gen=1000000000", 0, false},
		{"", 0, false},
	} {
		gen, ok := reportedGen(tc.detail)
		if gen != tc.gen || ok != tc.ok {
			t.Errorf("reportedGen(%q) = %d, %v; want %d, %v", tc.detail, gen, ok, tc.gen, tc.ok)
		}
	}
}
