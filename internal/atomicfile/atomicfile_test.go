package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := os.WriteFile(p, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new\n"), Options{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "new\n" {
		t.Fatalf("read back %q, %v", got, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 (the default, whatever the umask and the old file's)", st.Mode().Perm())
	}
	if err := Write(p, []byte("key"), Options{Mode: 0o600, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	leftovers(t, dir, "state.json")
}

// A failed sync or Prepare leaves the old file as it was and no
// temporary file behind.
func TestWriteFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "leases.json")
	if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk gone")
	for name, o := range map[string]Options{
		"sync":    {Sync: func(*os.File) error { return boom }},
		"prepare": {Prepare: func(*os.File) error { return boom }},
	} {
		if err := Write(p, []byte("new\n"), o); !errors.Is(err, boom) {
			t.Errorf("%s: err %v, want %v", name, err, boom)
		}
		if got, _ := os.ReadFile(p); string(got) != "old\n" {
			t.Errorf("%s: file now %q, want the old one", name, got)
		}
		leftovers(t, dir, "leases.json")
	}
	if err := Write(filepath.Join(dir, "no", "such", "dir", "f"), nil, Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
}

func leftovers(t *testing.T, dir, want string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != want {
		t.Errorf("directory holds %v, want only %s", names, want)
	}
}
