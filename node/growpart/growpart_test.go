package growpart

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/internal/testenv"
)

// sfdiskJSON is sfdisk's view of a disk image: the real peer that checks
// what Grow wrote.
type sfdiskJSON struct {
	PartitionTable struct {
		Label      string `json:"label"`
		LastLBA    uint64 `json:"lastlba"`
		Partitions []struct {
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func TestGrowWithSfdisk(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		testenv.Skip(t, "sfdisk (fdisk package) not installed")
	}
	for _, label := range []string{"dos", "gpt"} {
		t.Run(label, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk.img")
			// A 64 MiB image: a 16 MiB FAT partition and a 40 MiB root.
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, 64<<20); err != nil {
				t.Fatal(err)
			}
			script := "label: " + label + "\nstart=2048, size=32768, type=" + map[string]string{"dos": "c", "gpt": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"}[label] +
				"\nstart=34816, size=81920, type=" + map[string]string{"dos": "83", "gpt": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}[label] + "\n"
			sf := exec.Command("sfdisk", "--quiet", img)
			sf.Stdin = strings.NewReader(script)
			if out, err := sf.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v\n%s", err, out)
			}
			// The disk is larger than the image: 256 MiB.
			if err := os.Truncate(img, 256<<20); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Grow(f, 256<<20)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if r.Partition != 2 || r.OldEnd != 34816+81920-1 {
				t.Errorf("Grow = %+v, want partition 2 from end %d", r, 34816+81920-1)
			}
			out, err := exec.Command("sfdisk", "--json", img).Output()
			if err != nil {
				t.Fatalf("sfdisk --json after Grow: %v", err)
			}
			var j sfdiskJSON
			if err := json.Unmarshal(out, &j); err != nil {
				t.Fatal(err)
			}
			parts := j.PartitionTable.Partitions
			if len(parts) != 2 {
				t.Fatalf("sfdisk sees %d partitions: %s", len(parts), out)
			}
			end := parts[1].Start + parts[1].Size - 1
			want := uint64(256<<20/512 - 1)
			want -= 33 // a GPT's backup array and header, kept free on MBR too (as cloud-utils' growpart does)
			if end != want || end != r.NewEnd {
				t.Errorf("partition 2 ends at %d (Grow said %d), want %d", end, r.NewEnd, want)
			}
			if parts[0].Start != 2048 || parts[0].Size != 32768 {
				t.Errorf("partition 1 changed: %+v", parts[0])
			}
			if v, err := exec.Command("sfdisk", "--verify", img).CombinedOutput(); err != nil || !strings.Contains(string(v), "No errors detected") {
				t.Errorf("sfdisk --verify: %v\n%s", err, v)
			}
			// Growing again changes nothing.
			f, _ = os.OpenFile(img, os.O_RDWR, 0)
			r2, err := Grow(f, 256<<20)
			f.Close()
			if err != nil || r2.NewEnd != r.NewEnd {
				t.Errorf("second Grow = %+v, %v", r2, err)
			}
		})
	}
}

func TestGrowErrors(t *testing.T) {
	dir := t.TempDir()
	blank := filepath.Join(dir, "blank")
	os.WriteFile(blank, make([]byte, 1<<20), 0o644)
	f, _ := os.Open(blank)
	defer f.Close()
	if _, err := Grow(nopWriter{f}, 1<<20); err == nil || !strings.Contains(err.Error(), "no partition table") {
		t.Errorf("blank disk: %v", err)
	}
}

type nopWriter struct{ *os.File }

func (nopWriter) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }
