package action

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/u-root/u-root/pkg/mount/block"
)

// fakeSys is a fake sysfs tree: disks under devices/ (their device
// directory holds the device's attributes), linked from class/block.
type fakeSys struct {
	t    *testing.T
	root string
}

func newFakeSys(t *testing.T) *fakeSys {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "class", "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &fakeSys{t: t, root: root}
}

func (f *fakeSys) sys() sysfs { return sysfs(f.root) }

func (f *fakeSys) write(p string, kv map[string]string) {
	f.t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		f.t.Fatal(err)
	}
	for k, v := range kv {
		if err := os.WriteFile(filepath.Join(p, k), []byte(v), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

// disk adds a disk whose device is at devices/devpath, with its own
// attributes (size, removable, serial...) and its device's (model,
// serial, name...), and the numbered partitions.
func (f *fakeSys) disk(devpath, name string, attrs, dev map[string]string, parts ...string) {
	f.t.Helper()
	devDir := filepath.Join(f.root, "devices", devpath)
	f.write(devDir, dev)
	dir := filepath.Join(devDir, "block", name)
	a := map[string]string{"size": "2097152\n", "removable": "0\n"}
	for k, v := range attrs {
		a[k] = v
	}
	f.write(dir, a)
	if err := os.Symlink("../..", filepath.Join(dir, "device")); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(f.root, "class", "block", name)); err != nil {
		f.t.Fatal(err)
	}
	for i, p := range parts {
		pd := filepath.Join(dir, p)
		f.write(pd, map[string]string{"partition": strings.TrimSpace(string(rune('1'+i))) + "\n", "size": "2048\n"})
		if err := os.Symlink(pd, filepath.Join(f.root, "class", "block", p)); err != nil {
			f.t.Fatal(err)
		}
	}
}

// A Compute Module 4 with eMMC: the boot areas and RPMB are not disks to
// install on; neither is a USB stick, a removable card reader, an empty
// one, a loop device or a CD drive.
func TestAutoDiskFilters(t *testing.T) {
	f := newFakeSys(t)
	mmc := "platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:0001"
	f.disk(mmc, "mmcblk0", nil, map[string]string{"name": "DG4032\n", "serial": "0x1234abcd\n", "type": "MMC\n"}, "mmcblk0p1", "mmcblk0p2")
	f.disk(mmc, "mmcblk0boot0", map[string]string{"size": "8192\n", "force_ro": "1\n"}, nil)
	f.disk(mmc, "mmcblk0boot1", map[string]string{"size": "8192\n", "force_ro": "1\n"}, nil)
	f.disk(mmc, "mmcblk0rpmb", map[string]string{"size": "8192\n"}, nil)
	f.disk("platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0", "sda",
		nil, map[string]string{"vendor": "SanDisk \n", "model": "Ultra           \n"}, "sda1")
	f.disk("platform/card-reader/host1/target1:0:0/1:0:0:0", "sdb", map[string]string{"removable": "1\n"}, nil)
	f.disk("platform/card-reader/host1/target1:0:0/1:0:0:1", "sdc", map[string]string{"size": "0\n"}, nil)
	f.disk("virtual/block", "loop0", nil, nil)
	f.disk("platform/ata/host2/target2:0:0/2:0:0:0", "sr0", nil, nil)

	got, err := chooseDisk(context.Background(), f.sys(), "auto", 20*time.Millisecond, time.Second)
	if err != nil || got != "/dev/mmcblk0" {
		t.Fatalf("chooseDisk = %q, %v; want /dev/mmcblk0", got, err)
	}
	for name, want := range map[string]string{
		"mmcblk0boot0": "an eMMC boot area", "mmcblk0boot1": "an eMMC boot area", "mmcblk0rpmb": "an eMMC RPMB area",
		"sda": "on USB", "sdb": "removable", "sdc": "empty (no medium)", "mmcblk0": "",
	} {
		if why := f.sys().notAuto(name); why != want {
			t.Errorf("notAuto(%s) = %q, want %q", name, why, want)
		}
	}
	// Named, a USB disk is taken: asking for it is the way to install on one.
	if got, err := chooseDisk(context.Background(), f.sys(), "/dev/disk/by-id/mmc-DG4032_0x1234abcd", time.Millisecond, time.Second); err != nil || got != "/dev/mmcblk0" {
		t.Errorf("by-id of the eMMC: %q, %v", got, err)
	}
}

// Several internal disks: refused, every one named, with their ids.
func TestAutoDiskSeveral(t *testing.T) {
	f := newFakeSys(t)
	f.disk("pci0000:00/0000:00:02.0/virtio1", "vda", map[string]string{"serial": "root-disk\n"}, nil)
	f.disk("pci0000:00/0000:00:03.0/nvme/nvme0", "nvme0n1", map[string]string{"nsid": "1\n", "wwid": "eui.0025385b71b0a1b2\n"},
		map[string]string{"model": "Samsung SSD 970 EVO Plus 1TB            \n", "serial": "S4EWNX0N123456A     \n"})
	_, err := chooseDisk(context.Background(), f.sys(), "auto", 20*time.Millisecond, time.Second)
	if err == nil {
		t.Fatal("two internal disks: no error")
	}
	for _, want := range []string{"several internal disks (/dev/nvme0n1, /dev/vda)", "/dev/vda is /dev/disk/by-id/virtio-root-disk",
		"/dev/nvme0n1 is /dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456A"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// A disk that appears late (an NVMe or SCSI disk still being probed) is
// waited for: the second disk makes it a refusal, not a guess.
func TestAutoDiskLate(t *testing.T) {
	f := newFakeSys(t)
	f.disk("pci0000:00/0000:00:02.0/virtio1", "vda", nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		f.disk("pci0000:00/0000:00:04.0/virtio2/host0/target0:0:0/0:0:0:0", "sda", nil, map[string]string{"vendor": "QEMU    \n", "model": "QEMU HARDDISK   \n"})
	}()
	start := time.Now()
	_, err := chooseDisk(context.Background(), f.sys(), "auto", 600*time.Millisecond, 5*time.Second)
	<-done
	if err == nil || !strings.Contains(err.Error(), "several internal disks (/dev/sda, /dev/vda)") {
		t.Fatalf("a disk that appears 0.3 s in, within the quiet time: %v; want a refusal naming both", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("returned after %v: the quiet time (0.6 s) was not waited after the late disk", d)
	}
}

// No disk at all: the wait is bounded, and the error says what to check.
func TestAutoDiskNone(t *testing.T) {
	f := newFakeSys(t)
	f.disk("virtual/block", "loop0", nil, nil)
	start := time.Now()
	_, err := chooseDisk(context.Background(), f.sys(), "auto", 10*time.Millisecond, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no internal disk") {
		t.Errorf("no disk: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %v, want the bound (0.3 s)", d)
	}
}

// ataPage is an ATA Information VPD page (89h) with IDENTIFY DEVICE data
// carrying model and serial, bytes swapped in each word as ATA has them.
func ataPage(model, serial string) string {
	b := make([]byte, 60+512)
	b[1] = 0x89
	put := func(word, words int, s string) {
		s += strings.Repeat(" ", 2*words-len(s))
		for i := 0; i < words; i++ {
			b[60+2*(word+i)], b[60+2*(word+i)+1] = s[2*i+1], s[2*i]
		}
	}
	put(10, 10, serial)
	put(27, 20, model)
	return string(b)
}

// The by-id names, as udev's 60-persistent-storage.rules make them.
func TestDiskIDs(t *testing.T) {
	f := newFakeSys(t)
	f.disk("pci0000:00/0000:00:03.0/nvme/nvme0", "nvme0n1", map[string]string{"nsid": "1\n", "wwid": "eui.0025385b71b0a1b2\n"},
		map[string]string{"model": "Samsung SSD 970 EVO Plus 1TB            \n", "serial": "S4EWNX0N123456A     \n"}, "nvme0n1p1", "nvme0n1p2")
	f.disk("pci0000:00/0000:00:02.0/virtio1", "vda", map[string]string{"serial": "root-disk\n"}, nil, "vda1")
	f.disk("platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:0001", "mmcblk0", nil, map[string]string{"name": "DG4032\n", "serial": "0x1234abcd\n"})
	f.disk("platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:0001", "mmcblk0boot0", nil, nil)
	f.disk("pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0", "sda", nil,
		map[string]string{"vendor": "ATA     \n", "model": "Samsung SSD 860 \n", "wwid": "naa.5002538E40A1B2C3\n",
			"vpd_pg89": ataPage("Samsung SSD 860 EVO 500GB", "S3Z1NB0K123456X")}, "sda1")
	f.disk("pci0000:00/0000:00:05.0/host1/target1:0:0/1:0:0:0", "sdb", nil,
		map[string]string{"vendor": "SEAGATE \n", "model": "ST4000NM0023    \n", "wwid": "naa.5000c500a1b2c3d4\n"})

	got := f.sys().ids()
	want := map[string]string{
		"nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456A":         "nvme0n1",
		"nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456A_1":       "nvme0n1",
		"nvme-eui.0025385b71b0a1b2":                                 "nvme0n1",
		"nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456A-part1":   "nvme0n1p1",
		"nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456A_1-part1": "nvme0n1p1",
		"nvme-eui.0025385b71b0a1b2-part1":                           "nvme0n1p1",
		"nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456A-part2":   "nvme0n1p2",
		"nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456A_1-part2": "nvme0n1p2",
		"nvme-eui.0025385b71b0a1b2-part2":                           "nvme0n1p2",
		"virtio-root-disk":                                          "vda",
		"virtio-root-disk-part1":                                    "vda1",
		"mmc-DG4032_0x1234abcd":                                     "mmcblk0",
		"ata-Samsung_SSD_860_EVO_500GB_S3Z1NB0K123456X":             "sda",
		"ata-Samsung_SSD_860_EVO_500GB_S3Z1NB0K123456X-part1":       "sda1",
		"wwn-0x5002538e40a1b2c3":                                    "sda",
		"wwn-0x5002538e40a1b2c3-part1":                              "sda1",
		"wwn-0x5000c500a1b2c3d4":                                    "sdb",
		"scsi-35000c500a1b2c3d4":                                    "sdb",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ids (-want +got):\n%s", d)
	}
	ctx := context.Background()
	for id, dev := range map[string]string{"nvme-eui.0025385b71b0a1b2": "/dev/nvme0n1", "virtio-root-disk": "/dev/vda", "ata-Samsung_SSD_860_EVO_500GB_S3Z1NB0K123456X": "/dev/sda"} {
		if got, err := f.sys().waitNamed(ctx, "/dev/disk/by-id/"+id, time.Millisecond); err != nil || got != dev {
			t.Errorf("disk=/dev/disk/by-id/%s: %q, %v; want %s", id, got, err, dev)
		}
	}
	_, err := f.sys().waitNamed(ctx, "/dev/disk/by-id/nvme-Other_1", 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no disk has the id nvme-Other_1") || !strings.Contains(err.Error(), "virtio-root-disk") {
		t.Errorf("an id no disk has: %v; want the ids there are", err)
	}
}

// Two devices with one id (cloned virtio serials; a multi-namespace NVMe
// drive's nvme-MODEL_SERIAL): the id is refused, naming both, and never
// resolved to whichever sorts last; the ids only one has still resolve.
func TestDiskIDShared(t *testing.T) {
	f := newFakeSys(t)
	f.disk("pci0000:00/0000:00:02.0/virtio1", "vda", map[string]string{"serial": "clone\n"}, nil)
	f.disk("pci0000:00/0000:00:03.0/virtio2", "vdb", map[string]string{"serial": "clone\n"}, nil)
	nvme := map[string]string{"model": "Samsung SSD 970 EVO Plus 1TB            \n", "serial": "S4EWNX0N123456A     \n"}
	f.disk("pci0000:00/0000:00:04.0/nvme/nvme0", "nvme0n1", map[string]string{"nsid": "1\n"}, nvme)
	f.disk("pci0000:00/0000:00:04.0/nvme/nvme0", "nvme0n2", map[string]string{"nsid": "2\n"}, nvme)
	ctx := context.Background()
	for id, both := range map[string]string{
		"virtio-clone": "2 devices (/dev/vda, /dev/vdb)",
		"nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456A": "2 devices (/dev/nvme0n1, /dev/nvme0n2)",
	} {
		got, err := f.sys().waitNamed(ctx, "/dev/disk/by-id/"+id, time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), both) {
			t.Errorf("disk=/dev/disk/by-id/%s: %q, %v; want a refusal naming %s", id, got, err, both)
		}
	}
	if got, err := f.sys().waitNamed(ctx, "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456A_2", time.Millisecond); err != nil || got != "/dev/nvme0n2" {
		t.Errorf("the second namespace's own id: %q, %v", got, err)
	}
}

func TestUdevName(t *testing.T) {
	for in, want := range map[string]string{
		"nvme-Samsung SSD 970  EVO_S4":  "nvme-Samsung_SSD_970_EVO_S4",
		"  leading and trailing  ":      "leading_and_trailing",
		"ata-WDC WD40EFRX-68N32N0_WD-W": "ata-WDC_WD40EFRX-68N32N0_WD-W",
		"virtio-a/b$c":                  "virtio-a_b_c",
		"mmc-SD64G_0x0123":              "mmc-SD64G_0x0123",
	} {
		if got := udevName(in); got != want {
			t.Errorf("udevName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUsableDisks(t *testing.T) {
	all := block.BlockDevices{{Name: "vdb"}, {Name: "loop0"}, {Name: "ram0"}, {Name: "zram0"}, {Name: "sr0"}, {Name: "mmcblk0"}, {Name: "mmcblk0p1"}, {Name: "mtdblock0"}, {Name: "nvme0n1"}}
	var got []string
	for _, d := range usableDisks(all) {
		got = append(got, d.Name)
	}
	sort.Strings(got)
	want := "mmcblk0 mmcblk0p1 nvme0n1 vdb"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("usableDisks = %q, want %q", s, want)
	}
}

func TestMatchTargetErrors(t *testing.T) {
	if _, err := matchTarget(nil, "/dev/disk/by-uuid/1234"); err == nil || !strings.Contains(err.Error(), "no udev") {
		t.Errorf("a /dev/disk link other than by-id: %v; want an error saying there is no udev", err)
	}
	if got, err := matchTarget(nil, "/dev/disk/by-id/nvme-Samsung_1"); err != nil || len(got) != 0 {
		t.Errorf("a by-id name no disk has yet: %v, %v; want none and no error (waitDisks waits for it)", got, err)
	}
	if got, err := matchTarget(nil, "/dev/nonexistent-disk"); err != nil || len(got) != 0 {
		t.Errorf("a /dev name not there yet: %v, %v; want none and no error (waitDisks waits for it)", got, err)
	}
}
