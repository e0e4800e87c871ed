package action

import (
	"testing"
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
