package builder

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRenameDurable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.gz")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := renameDurable(filepath.Join(dir, "missing"), p); err == nil {
		t.Fatal("renameDurable of a missing file: no error")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("files left: %v", ents)
	}
}
