package server

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/eeprom"
	"github.com/ramboot/ramboot/tree"
)

// TestPreflightBootImg: --check finds a board's boot.img as its manifest
// lists it and boot.sig signing it, and names each way that breaks (a
// changed image, a boot.sig of another image, an unsigned one, a missing
// file) with the fix.
func TestPreflightBootImg(t *testing.T) {
	pem, err := os.ReadFile("../eeprom/testdata/test-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	key, err := eeprom.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	img := []byte(strings.Repeat("FAT image ", 1000))
	sum := sha256.Sum256(img)
	sig, err := eeprom.SignDigest(img, 1700000000, key)
	if err != nil {
		t.Fatal(err)
	}
	m := tree.Manifest{Board: "rpi4", BootImg: &tree.BootImgInfo{Name: "boot.img", Size: int64(len(img)),
		SHA256: hex.EncodeToString(sum[:]), Sig: tree.FileInfo{Name: "boot.sig"}}}
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{Root: root}
	check := func() *Preflight { p := &Preflight{}; s.preflightBootImg(p, m); return p }

	write("boot.img", img)
	write("boot.sig", sig)
	if p := check(); len(p.Problems) != 0 || len(p.Summary) != 1 || !strings.Contains(p.Summary[0], "HTTP boot boot.img") {
		t.Fatalf("a good boot.img: summary %q, problems %v", p.Summary, p.Problems)
	}
	for _, tc := range []struct {
		name     string
		img, sig []byte
		want     string
	}{
		{"changed image", append([]byte("X"), img[1:]...), sig, "its manifest says"},
		{"boot.sig of another image", img, []byte(strings.Repeat("ab", 32) + "\nts: 1\nrsa2048: " + strings.Repeat("cd", 256) + "\n"), "the Pi would refuse it"},
		{"unsigned", img, []byte(hex.EncodeToString(sum[:]) + "\nts: 1\n"), "no rsa2048 signature"},
		{"not a signature file", img, []byte("hello\n"), "rebuild with"},
		{"no boot.img", nil, sig, "listed in its manifest but missing"},
	} {
		os.Remove(filepath.Join(root, "boot.img"))
		if tc.img != nil {
			write("boot.img", tc.img)
		}
		write("boot.sig", tc.sig)
		p := check()
		if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Error(), tc.want) {
			t.Errorf("%s: problems %v; want one saying %q", tc.name, p.Problems, tc.want)
		}
	}
	// No boot.img in the manifest: nothing said.
	m.BootImg = nil
	if p := check(); len(p.Problems)+len(p.Summary) != 0 {
		t.Errorf("no boot_img: %+v", p)
	}
}
