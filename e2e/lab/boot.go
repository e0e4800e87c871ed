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
	// boards/pc.yaml says machine pc; the tests have always booted q35.
	o := qemu.Options{Board: "pc", Machine: "q35", NetNS: l.NS, Netdev: qemu.TapNetdev, MAC: mac}
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
		o.Extra = []string{
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file=" + vars}
		// No option ROM: the PXE client is the firmware's own.
		o.NICOpts = ",romfile=,bootindex=1"
	} else {
		o.Extra = []string{"-boot", "n"}
	}
	o.Extra = append(o.Extra, extra...)
	return qemu.Boot(t, o)
}
