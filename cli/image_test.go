package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/tree/images"
)

// TestImageCommands: ramboot image list, promote, rollback and prune on
// a tree with three generations, as ramboot rootfs leaves them.
func TestImageCommands(t *testing.T) {
	out := t.TempDir()
	dir := filepath.Join(out, "images")
	os.MkdirAll(dir, 0o755)
	s := images.Store{Dir: dir}
	var ids []string
	for i, content := range []string{"one", "two", "three"} {
		tmp := filepath.Join(dir, "debian.squashfs.tmp")
		os.WriteFile(tmp, []byte(content), 0o644)
		h := sha256.Sum256([]byte(content))
		g, err := s.Add("debian", tmp, hex.EncodeToString(h[:]))
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 12, 1, i, 0, 0, 0, time.UTC)
		os.Chtimes(filepath.Join(dir, g.File()), at, at)
		if _, err := s.Promote("debian", "", g.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, g.ID)
	}
	code, stdout, errb := runCLI(t, "image", "list", "--out", out)
	if code != 0 || !regexp.MustCompile(`(?s)debian@`+ids[2]+`\.squashfs +2026-12-01T02:00:00Z +0\.0 MB +debian\.squashfs\n.*debian@`+ids[0]).MatchString(stdout) {
		t.Fatalf("image list: %d %q %q", code, stdout, errb)
	}
	code, stdout, _ = runCLI(t, "image", "rollback", "--out", out)
	if target, _ := os.Readlink(filepath.Join(dir, "debian.squashfs")); code != 0 || target != "debian@"+ids[1]+".squashfs" || !strings.Contains(stdout, "in force at each node's next boot") {
		t.Fatalf("image rollback: %d %q, now %s", code, stdout, target)
	}
	code, stdout, _ = runCLI(t, "image", "promote", ids[2][:8], "--channel", "canary", "--out", out)
	if target, _ := os.Readlink(filepath.Join(dir, "debian-canary.squashfs")); code != 0 || target != "debian@"+ids[2]+".squashfs" {
		t.Fatalf("image promote --channel canary: %d %q, canary %s", code, stdout, target)
	}
	// Prune to 0 kept: one on the default channel (ids[1]), one on the canary
	// (ids[2]); ids[0] is pinned by nodes.yaml, then not.
	nodes := filepath.Join(out, "nodes.yaml")
	os.WriteFile(nodes, []byte("nodes:\n  - mac: 52:54:00:12:34:56\n    option224: \"http://{{.Server}}:8080/images/debian@"+ids[0][:8]+".squashfs\"\n"), 0o644)
	if code, stdout, _ = runCLI(t, "image", "prune", "--keep", "0", "--nodes", nodes, "--out", out); code != 0 || !strings.Contains(stdout, "nothing to remove") {
		t.Fatalf("prune with the pin: %d %q", code, stdout)
	}
	if code, stdout, _ = runCLI(t, "image", "prune", "--keep", "0", "--out", out); code != 0 || !strings.Contains(stdout, "removed debian@"+ids[0]) {
		t.Fatalf("prune: %d %q", code, stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "list"}, "--out DIR"},
		{[]string{"image", "promote", "--out", out}, "want 1"},
		{[]string{"image", "promote", "ffffff", "--out", out}, "no generation"},
		{[]string{"image", "rollback", "--channel", "canary", "--out", out}, "no earlier generation"},
		{[]string{"image", "list", "--channel", "Bad", "--out", out}, "--channel"},
		{[]string{"image", "frobnicate", "--out", out}, "unknown action"},
	} {
		if code, _, errb := runCLI(t, tc.args...); code == 0 || !strings.Contains(errb, tc.want) {
			t.Errorf("%v: %d %q; want an error saying %q", tc.args, code, errb, tc.want)
		}
	}
}
