package apt

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/testenv"
	"github.com/ramboot/ramboot/kernel/deb"
)

// TestRealArchive checks the whole chain against the Debian mirror of this
// host's apt sources. It needs the network: run it with RAMBOOT_NET_TESTS=1.
func TestRealArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads from the Debian archive: not in -short (make unit)")
	}
	if os.Getenv("RAMBOOT_NET_TESTS") != "1" {
		testenv.Skip(t, "set RAMBOOT_NET_TESTS=1 to test against the real Debian archive (make test does)")
	}
	mirror, err := MirrorFromSources("/")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := &Client{Mirror: mirror, CacheDir: t.TempDir(), Progress: os.Stderr}
	rel, err := c.Release(ctx, "trixie")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mirror %s: %s/%s version %s dated %s, signed by %s, %d files", mirror, rel.Suite, rel.Codename, rel.Version, rel.Date, rel.Signer, len(rel.Files))

	p, err := c.Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("found %+v", *p)
	path, err := c.Fetch(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := deb.Control(path)
	if err != nil {
		t.Fatal(err)
	}
	if ctrl["Package"] != "raspi-firmware" || ctrl["Version"] != p.Version {
		t.Errorf("control of %s = %v", path, ctrl)
	}
	var n int
	var sawStart4 bool
	err = deb.Walk(path, func(h *tar.Header, r io.Reader) error {
		n++
		if strings.HasSuffix(h.Name, "/start4.elf") {
			sawStart4 = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d entries, start4.elf present: %v", path, n, sawStart4)
	if !sawStart4 {
		t.Error("raspi-firmware has no start4.elf")
	}

	// Offline reuse of everything just downloaded.
	c.Offline = true
	p2, path2, err := c.FetchPackage(ctx, "trixie", []string{"non-free-firmware"}, "arm64", "raspi-firmware", "")
	if err != nil {
		t.Fatalf("offline FetchPackage: %v", err)
	}
	if *p2 != *p || path2 != path {
		t.Errorf("offline FetchPackage = %+v %s, want %+v %s", *p2, path2, *p, path)
	}
}
