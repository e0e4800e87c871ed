package main

import (
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/mount/block"
)

func TestDedupe(t *testing.T) {
	k, rd := []byte("kernel"), []byte("initrd")
	cands := []localCandidate{
		{dev: "/dev/vda15", how: "grub", label: "Debian", kernel: k, initrd: rd, cmdline: "root=UUID=x ro"},
		{dev: "/dev/vda1", how: "grub", label: "Debian", kernel: k, initrd: rd, cmdline: "root=UUID=x ro"},
		{dev: "/dev/vdb1", how: "bls", label: "Fedora", kernel: k, initrd: rd, cmdline: "root=UUID=y ro"},
		{dev: "/dev/vdc1", how: "config.txt", label: "kernel8.img", kernel: []byte("other"), initrd: rd, cmdline: "root=UUID=x ro"},
	}
	got := dedupe(cands)
	if len(got) != 3 || got[0].dev != "/dev/vda15" || got[1].dev != "/dev/vdb1" || got[2].dev != "/dev/vdc1" {
		t.Errorf("dedupe kept %v; want vda15 (the first of two that boot the same), vdb1 (another command line), vdc1 (another kernel)", got)
	}
}

func TestUsableDisks(t *testing.T) {
	all := block.BlockDevices{{Name: "vdb"}, {Name: "loop0"}, {Name: "ram0"}, {Name: "zram0"}, {Name: "sr0"}, {Name: "mmcblk0"}, {Name: "mmcblk0p1"}, {Name: "mtdblock0"}, {Name: "nvme0n1"}}
	var got []string
	for _, d := range usableDisks(all) {
		got = append(got, d.Name)
	}
	want := "mmcblk0 mmcblk0p1 nvme0n1 vdb"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("usableDisks = %q, want %q", s, want)
	}
}

func TestMatchTargetErrors(t *testing.T) {
	if _, err := matchTarget(nil, "/dev/disk/by-id/nvme-Samsung_1"); err == nil {
		t.Error("a /dev/disk/by-id name that does not exist: no error (the init has no udev: the message must say so)")
	}
	if got, err := matchTarget(nil, "/dev/nonexistent-disk"); err != nil || len(got) != 0 {
		t.Errorf("a /dev name not there yet: %v, %v; want none and no error (waitDisks waits for it)", got, err)
	}
}
