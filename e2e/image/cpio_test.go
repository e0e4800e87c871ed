package image

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/pgzip"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/internal/testenv"
)

// TestRootfsCpioList: `zcat rootfs.cpio.gz | cpio -t` (GNU cpio) lists the
// whole initramfs of a built tree, the /dev nodes, /init and the u-root
// binaries alike: the archive is one cpio stream with one trailer, not a
// device segment that hides the rest. (TestBootVirt boots the same file:
// the kernel unpacks it.)
func TestRootfsCpioList(t *testing.T) {
	dir, _ := cache.Image(t, "virt")
	bin, err := exec.LookPath("cpio")
	if err != nil {
		testenv.Skip(t, "GNU cpio not installed: run e2e/deps.sh")
	}
	f, err := os.Open(filepath.Join(dir, "rootfs.cpio.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := pgzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	// The trailer ends the archive: only padding follows it. (The string
	// itself may also be inside a binary that reads cpio archives.)
	end := bytes.LastIndex(plain, []byte("TRAILER!!!\x00"))
	if end < 0 || len(bytes.Trim(plain[end+len("TRAILER!!!\x00"):], "\x00")) != 0 {
		t.Errorf("rootfs.cpio.gz does not end with a cpio trailer and padding")
	}
	cmd := exec.Command(bin, "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(plain)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, stderr.String())
	}
	listed := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		listed[l] = true
	}
	for _, want := range []string{"dev", "dev/console", "dev/null", "init", "bbin/bb", "bbin/gosh", "bbin/dhclient", "bin/sh", "etc/ramboot/build.json"} {
		if !listed[want] {
			t.Errorf("cpio -t does not list %s", want)
		}
	}
	// Every entry a full reader finds, cpio -t lists too.
	all := archiveNames(t, filepath.Join(dir, "rootfs.cpio.gz"))
	var missing []string
	for n := range all {
		if !listed[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 || len(listed) != len(all) {
		t.Errorf("cpio -t listed %d entries, the archive has %d; missing: %v", len(listed), len(all), missing)
	}
	t.Logf("cpio -t lists %d entries of rootfs.cpio.gz", len(listed))
}
