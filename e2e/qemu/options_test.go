package qemu

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOptionsArgs: the command lines built from the board profiles are
// the ones the tests typed by hand before (the same arguments; QEMU reads
// them in any order but the two -serial, whose order is kept).
func TestOptionsArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		bin  string
		want []string // the hand-typed command line
	}{
		{"virt in a lab", Options{Board: "virt", Kernel: "d/Image", Initrd: "d/rootfs.cpio.gz", Append: "ramboot.224=shell",
			Netdev: TapNetdev, MAC: "52:54:00:12:34:56"},
			"qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a72", "-m", "1024", "-smp", "2",
				"-nographic", "-no-reboot",
				"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
				"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
				"-kernel", "d/Image", "-initrd", "d/rootfs.cpio.gz",
				"-append", "console=ttyAMA0 panic=-1 ramboot.224=shell"}},
		{"virt with a disk, rebooting", Options{Board: "virt", Kernel: "d/Image", Initrd: "d/rootfs.cpio.gz", Memory: "1536", Reboot: true,
			Netdev: TapNetdev, MAC: "52:54:00:12:34:56", Extra: []string{"-drive", "if=none,id=d0,format=raw,file=disk", "-device", "virtio-blk-pci,drive=d0"}},
			"qemu-system-aarch64", []string{"-M", "virt", "-cpu", "cortex-a72", "-m", "1536", "-smp", "2",
				"-nographic",
				"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
				"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
				"-drive", "if=none,id=d0,format=raw,file=disk", "-device", "virtio-blk-pci,drive=d0",
				"-kernel", "d/Image", "-initrd", "d/rootfs.cpio.gz",
				"-append", "console=ttyAMA0 panic=-1"}},
		{"raspi4b", Options{Board: "rpi4", Kernel: "d/Image", DTB: "x.dtb", Initrd: "d/rootfs.cpio.gz"},
			"qemu-system-aarch64", []string{"-M", "raspi4b", "-nographic", "-no-reboot",
				"-kernel", "d/Image", "-dtb", "x.dtb", "-initrd", "d/rootfs.cpio.gz",
				"-append", "console=ttyAMA0,115200 panic=1"}},
		{"raspi3b", Options{Board: "rpi3", Kernel: "d/Image", DTB: "d/bcm2837-rpi-3-b.dtb", Initrd: "d/rootfs.cpio.gz",
			Append: "ramboot.board=rpi3", Netdev: TapNetdev, MAC: "b8:27:eb:00:00:33"},
			"qemu-system-aarch64", []string{"-M", "raspi3b", "-m", "1G", "-nographic", "-monitor", "none", "-no-reboot",
				"-serial", "null", "-serial", "stdio",
				"-kernel", "d/Image", "-dtb", "d/bcm2837-rpi-3-b.dtb", "-initrd", "d/rootfs.cpio.gz",
				"-append", "console=ttyS1,115200 panic=1 ramboot.board=rpi3",
				"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
				"-device", "usb-net,netdev=n0,mac=b8:27:eb:00:00:33"}},
		{"a UEFI PC", Options{Board: "pc", Machine: "q35", Netdev: TapNetdev, MAC: "52:54:00:00:00:01", NICOpts: ",romfile=,bootindex=1",
			Extra: []string{"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=CODE", "-drive", "if=pflash,format=raw,unit=1,file=VARS"}},
			"qemu-system-x86_64", []string{"-M", "q35", "-m", "1024", "-smp", "2", "-nographic", "-no-reboot",
				"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
				"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=CODE",
				"-drive", "if=pflash,format=raw,unit=1,file=VARS",
				"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,romfile=,bootindex=1"}},
	} {
		bin, got, err := tc.o.args()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if bin != tc.bin {
			t.Errorf("%s: QEMU is %s, want %s", tc.name, bin, tc.bin)
		}
		// Compared as pairs: an option and its value.
		if diff := cmp.Diff(pairs(tc.want), pairs(got)); diff != "" {
			t.Errorf("%s: arguments (-hand-typed +from the profile):\n%s", tc.name, diff)
		}
		if i, j := slices.Index(got, "null"), slices.Index(got, "stdio"); i > j {
			t.Errorf("%s: -serial stdio before -serial null: %q", tc.name, got)
		}
	}
	if _, _, err := (Options{Board: "nosuch"}).args(); err == nil {
		t.Error("a board that does not exist gave a command line")
	}
}

// pairs is args as "option value" (or "option") strings, sorted.
func pairs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		p := args[i]
		if i+1 < len(args) && args[i+1][0] != '-' {
			p += " " + args[i+1]
			i++
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
