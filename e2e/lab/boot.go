package lab

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ramboot/ramboot/e2e/qemu"
)

// OVMF, the UEFI firmware of the PCs that BootPC boots with uefi set.
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// BootPC starts an x86-64 PC on tap0 that boots from the network only;
// extra is more QEMU arguments.
func (l *Lab) BootPC(t testing.TB, mac string, uefi bool, extra ...string) *qemu.VM {
	t.Helper()
	args := []string{"netns", "exec", l.NS, qemu.BinaryX86(t),
		"-M", "q35", "-m", "1024", "-smp", "2", "-nographic", "-no-reboot",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"}
	if uefi {
		for _, f := range []string{ovmfCode, ovmfVars} {
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("%s: %v: install ovmf (`make test` does)", f, err)
			}
		}
		vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
		data, err := os.ReadFile(ovmfVars)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vars, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars,
			// No option ROM: the PXE client is the firmware's own.
			"-device", "virtio-net-pci,netdev=n0,mac="+mac+",romfile=,bootindex=1")
	} else {
		args = append(args, "-boot", "n", "-device", "virtio-net-pci,netdev=n0,mac="+mac)
	}
	return qemu.Start(t, "ip", append(args, extra...)...)
}

// pcServe starts `ramboot serve` on the pc tree with one node.
