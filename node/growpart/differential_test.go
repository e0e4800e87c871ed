package growpart

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ramboot/ramboot/internal/testenv"
)

// growCase is a disk image (an sfdisk script applied to an image of
// imageMiB, then the disk enlarged to diskMiB) to grow.
type growCase struct {
	name              string
	script            string
	imageMiB, diskMiB int64
	wantPart          int // the partition Grow picks
	wantContainer     int
	unchanged         bool
}

const (
	efi  = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	lnx  = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	swap = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
)

var growCases = []growCase{
	{name: "mbr", imageMiB: 64, diskMiB: 256, wantPart: 2,
		script: "label: dos\nstart=2048, size=32768, type=c\nstart=34816, size=81920, type=83\n"},
	// Debian's classic layout: a primary root, then an extended
	// partition holding the swap.
	{name: "mbr-extended", imageMiB: 64, diskMiB: 256, wantPart: 5, wantContainer: 2,
		script: "label: dos\nstart=2048, size=81920, type=83\nstart=83968, size=20480, type=5\nstart=86016, size=18432, type=82\n"},
	{name: "mbr-two-logical", imageMiB: 64, diskMiB: 256, wantPart: 6, wantContainer: 2,
		script: "label: dos\nstart=2048, size=32768, type=c\nstart=34816, size=61440, type=f\nstart=36864, size=40960, type=83\nstart=79872, size=16384, type=82\n"},
	// The extended partition already reaches the disk's end; the
	// logical one grows inside it.
	{name: "mbr-extended-room-inside", imageMiB: 64, diskMiB: 64, wantPart: 5, wantContainer: 2,
		script: "label: dos\nstart=2048, size=81920, type=83\nstart=83968, type=5\nstart=86016, size=18432, type=83\n"},
	// A primary after the extended partition is the last one.
	{name: "mbr-primary-after-extended", imageMiB: 64, diskMiB: 256, wantPart: 3,
		script: "label: dos\nstart=2048, size=40960, type=83\nstart=43008, size=20480, type=5\nstart=45056, size=18432, type=82\nstart=63488, size=20480, type=83\n"},
	{name: "mbr-full", imageMiB: 64, diskMiB: 64, wantPart: 2, unchanged: true,
		script: "label: dos\nstart=2048, size=32768, type=c\nstart=34816, type=83\n"},
	{name: "gpt", imageMiB: 64, diskMiB: 256, wantPart: 2,
		script: "label: gpt\nstart=2048, size=32768, type=" + efi + "\nstart=34816, size=81920, type=" + lnx + "\n"},
	// A swap partition after the root: the last one grows.
	{name: "gpt-after-root", imageMiB: 64, diskMiB: 256, wantPart: 3,
		script: "label: gpt\nstart=2048, size=32768, type=" + efi + "\nstart=34816, size=40960, type=" + lnx + "\nstart=75776, size=8192, type=" + swap + "\n"},
	// Partitions numbered out of disk order: the highest start grows.
	{name: "gpt-out-of-order", imageMiB: 64, diskMiB: 256, wantPart: 1,
		script: "label: gpt\nstart=75776, size=8192, type=" + lnx + "\nstart=2048, size=32768, type=" + efi + "\n"},
	// Less than 1 MiB to gain: nothing changes, not even the backup header.
	{name: "gpt-under-fudge", imageMiB: 64, diskMiB: 64, wantPart: 2, unchanged: true,
		script: "label: gpt\nstart=2048, size=32768, type=" + efi + "\nstart=34816, size=95000, type=" + lnx + "\n"},
}

// makeImage writes c's image at p and enlarges it to the disk's size.
func makeImage(t *testing.T, p string, c growCase) {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, c.imageMiB<<20); err != nil {
		t.Fatal(err)
	}
	sf := exec.Command("sfdisk", "--quiet", p)
	sf.Stdin = strings.NewReader(c.script)
	if out, err := sf.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	if err := os.Truncate(p, c.diskMiB<<20); err != nil {
		t.Fatal(err)
	}
}

// dump is sfdisk's view of an image, its warnings included (a GPT backup
// header not at the end, a protective MBR that does not cover the disk),
// with the image's path taken out.
func dump(t *testing.T, p string) string {
	t.Helper()
	cmd := exec.Command("sfdisk", "--dump", p)
	cmd.Env = append(os.Environ(), "LANG=C", "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("sfdisk --dump %s: %v\n%s", p, err, out.String())
	}
	return strings.ReplaceAll(out.String(), p, "DISK")
}

// cloudGrowpart runs cloud-utils' growpart on p's partition n and says
// whether it changed anything (exit 0: changed, 1: NOCHANGE).
func cloudGrowpart(t *testing.T, p string, n int) bool {
	t.Helper()
	out, err := exec.Command("growpart", p, strconv.Itoa(n)).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ee) && ee.ExitCode() == 1 && strings.Contains(string(out), "NOCHANGE"):
		return false
	}
	t.Fatalf("growpart %s %d: %v\n%s", p, n, err, out)
	return false
}

// TestGrowDifferential grows the same images with Grow and with
// cloud-utils' growpart (the partition Grow picked; for a logical one, its
// extended partition first, then it) and requires the same tables.
func TestGrowDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cloud-utils' growpart 12 times (half a minute): not in -short (make unit)")
	}
	for _, tool := range []string{"sfdisk", "growpart"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skipf(t, "%s not installed (packages fdisk, cloud-guest-utils; e2e/deps.sh installs them)", tool)
		}
	}
	var passed atomic.Int32
	for _, c := range growCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ours := filepath.Join(t.TempDir(), "disk.img")
			theirs := filepath.Join(t.TempDir(), "disk.img")
			makeImage(t, ours, c)
			img, err := os.ReadFile(ours) // the same ids in both
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(theirs, img, 0o644); err != nil {
				t.Fatal(err)
			}
			before := dump(t, ours)

			f, err := os.OpenFile(ours, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Grow(f, c.diskMiB<<20)
			f.Close()
			if err != nil {
				t.Fatalf("Grow: %v", err)
			}
			if r.Partition != c.wantPart || r.Container != c.wantContainer || (r.Unchanged != "") != c.unchanged {
				t.Fatalf("Grow = %+v, want partition %d, container %d, unchanged %v", r, c.wantPart, c.wantContainer, c.unchanged)
			}

			changed := false
			if r.Container != 0 {
				changed = cloudGrowpart(t, theirs, r.Container)
			}
			if cloudGrowpart(t, theirs, r.Partition) {
				changed = true
			}
			if changed == c.unchanged {
				t.Errorf("cloud-utils' growpart changed the table: %v, want %v", changed, !c.unchanged)
			}
			got, want := dump(t, ours), dump(t, theirs)
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("Grow's table differs from cloud-utils' growpart's (-growpart +Grow):\n%s\nbefore:\n%s", d, before)
			}
			if c.unchanged && got != before {
				t.Errorf("an unchanged grow changed the table:\n%s\nbefore:\n%s", got, before)
			}
			if v, err := exec.Command("sfdisk", "--verify", ours).CombinedOutput(); err != nil || !strings.Contains(string(v), "No errors detected") {
				t.Errorf("sfdisk --verify: %v\n%s", err, v)
			}
			passed.Add(1)
		})
	}
	t.Cleanup(func() {
		t.Logf("growpart differential: %d of %d cases give cloud-utils' table", passed.Load(), len(growCases))
	})
}
