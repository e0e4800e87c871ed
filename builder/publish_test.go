package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sumOf(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// TestPublishImageDigestFirst: when the new image takes its name, its
// digest is on disk already, so a reader never sees a new image with an
// old or missing digest (the first build too); a failed rename leaves the
// old image with the new digest, which a reader's check refuses.
func TestPublishImageDigestFirst(t *testing.T) {
	for _, first := range []bool{true, false} {
		dir := t.TempDir()
		img := filepath.Join(dir, "debian.squashfs")
		if !first {
			os.WriteFile(img, []byte("old image"), 0o644)
			os.WriteFile(img+".sha256", []byte(sumOf("old image")+"  debian.squashfs\n"), 0o644)
		}
		tmp := img + ".tmp"
		os.WriteFile(tmp, []byte("new image"), 0o644)
		wantSum := sumOf("new image") + "  debian.squashfs\n"
		renamed := false
		err := publishImage(tmp, img, sumOf("new image"), func(from, to string) error {
			if got, _ := os.ReadFile(img + ".sha256"); string(got) != wantSum {
				t.Errorf("first=%v: at the image's rename the digest file holds %q, want %q", first, got, wantSum)
			}
			renamed = true
			return os.Rename(from, to)
		})
		if err != nil || !renamed {
			t.Fatalf("first=%v: %v (renamed %v)", first, err, renamed)
		}
		if got, _ := os.ReadFile(img); string(got) != "new image" {
			t.Errorf("first=%v: image %q", first, got)
		}
		if got, _ := os.ReadFile(img + ".sha256"); string(got) != wantSum {
			t.Errorf("first=%v: digest %q", first, got)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
			t.Errorf("first=%v: temporary files left: %v", first, left)
		}
	}

	// The image's rename fails: the old image stays, with the new digest,
	// which does not match it (a reader fails its check, and retries).
	dir := t.TempDir()
	img := filepath.Join(dir, "debian.squashfs")
	os.WriteFile(img, []byte("old image"), 0o644)
	os.WriteFile(img+".tmp", []byte("new image"), 0o644)
	err := publishImage(img+".tmp", img, sumOf("new image"), func(string, string) error { return errors.New("disk full") })
	if err == nil || !strings.Contains(err.Error(), img) {
		t.Fatalf("failed rename: err %v, want one naming %s", err, img)
	}
	got, _ := os.ReadFile(img + ".sha256")
	if old, _ := os.ReadFile(img); strings.HasPrefix(string(got), sumOf(string(old))) {
		t.Fatalf("after a failed rename the digest %q matches the old image", got)
	}
}

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
