package facts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/internal/report"
)

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, v := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGatherPi: a Pi 4's device tree, an SD card and an NVMe disk, a
// loop device (left out), eth0 with its driver and speed, lo (left out).
func TestGatherPi(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"proc/device-tree/model":                             "Raspberry Pi 4 Model B Rev 1.4\x00",
		"proc/device-tree/system/linux,revision":             "\x00\xc0\x31\x14",
		"proc/device-tree/serial-number":                     "100000009ffefdef\x00",
		"proc/device-tree/cpus/cpu@0/compatible":             "arm,cortex-a72\x00",
		"proc/device-tree/chosen/bootloader/version":         "507b2360\x00",
		"proc/device-tree/chosen/bootloader/build-timestamp": "\x68\x1c\xb3\x00",
		"proc/cpuinfo":                            "processor\t: 0\nBogoMIPS\t: 108.00\n\nprocessor\t: 1\n\nprocessor\t: 2\n\nprocessor\t: 3\n",
		"proc/meminfo":                            "MemTotal:        3884328 kB\nMemFree:  1 kB\n",
		"sys/block/mmcblk0/size":                  "62333952\n",
		"sys/block/mmcblk0/device/serial":         "0x1234abcd\n",
		"sys/block/mmcblk0/removable":             "0\n",
		"sys/block/nvme0n1/size":                  "1953525168\n",
		"sys/block/nvme0n1/device/model":          "Samsung SSD 980 1TB                     \n",
		"sys/block/loop0/size":                    "8\n",
		"sys/class/net/eth0/address":              "dc:a6:32:01:36:c2\n",
		"sys/class/net/eth0/speed":                "1000\n",
		"sys/class/net/lo/address":                "00:00:00:00:00:00\n",
		"sys/bus/platform/drivers/bcmgenet/.keep": "",
		"sys/class/thermal/thermal_zone0/temp":    "48692\n",
	})
	os.MkdirAll(filepath.Join(root, "sys/class/net/eth0/device"), 0o755)
	os.Symlink("../../../../bus/platform/drivers/bcmgenet", filepath.Join(root, "sys/class/net/eth0/device/driver"))
	f := Gather(root, "dc:a6:32:01:36:c2")
	if f.Model != "Raspberry Pi 4 Model B Rev 1.4" || f.Revision != "c03114" || f.Serial != "100000009ffefdef" || f.CPU != "arm,cortex-a72" || f.Cores != 4 ||
		f.MemoryBytes != 3884328<<10 || f.TempMilliC != 48692 || f.Bootloader != "507b2360 2025-05-08" {
		t.Errorf("facts: %+v", f)
	}
	if len(f.Disks) != 2 || f.Disks[0].Name != "mmcblk0" || f.Disks[0].Bytes != 62333952*512 || f.Disks[0].Serial != "0x1234abcd" ||
		f.Disks[1].Model != "Samsung SSD 980 1TB" {
		t.Errorf("disks: %+v", f.Disks)
	}
	if len(f.NICs) != 1 || f.NICs[0] != (report.NIC{Name: "eth0", MAC: "dc:a6:32:01:36:c2", Driver: "bcmgenet", SpeedMbps: 1000}) {
		t.Errorf("NICs: %+v", f.NICs)
	}
	if _, err := f.Check(); err != nil {
		t.Errorf("the facts do not pass their own check: %v", err)
	}
	if s := f.Summary(); !strings.Contains(s, "Raspberry Pi 4 Model B Rev 1.4; 4 cores (arm,cortex-a72); 3793 MB; disks: mmcblk0 31.9 GB, nvme0n1 1000.2 GB; NICs: eth0 bcmgenet 1000 Mb/s") {
		t.Errorf("summary: %s", s)
	}
}

// TestGatherPC: DMI instead of a device tree; nothing else there.
func TestGatherPC(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"sys/class/dmi/id/sys_vendor":      "QEMU\n",
		"sys/class/dmi/id/product_name":    "Standard PC (Q35 + ICH9, 2009)\n",
		"sys/class/dmi/id/product_version": "pc-q35-10.0\n",
		"proc/cpuinfo":                     "processor\t: 0\nmodel name\t: QEMU Virtual CPU version 2.5+\n",
	})
	f := Gather(root, "52:54:00:12:34:60")
	if f.Model != "QEMU Standard PC (Q35 + ICH9, 2009)" || f.Revision != "pc-q35-10.0" || f.CPU != "QEMU Virtual CPU version 2.5+" || f.Cores != 1 ||
		len(f.Disks) != 0 || len(f.NICs) != 0 || f.Bootloader != "" {
		t.Errorf("facts: %+v", f)
	}
}
