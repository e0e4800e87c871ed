// Package pc netboots x86-64 PCs in QEMU from `ramboot serve`: iPXE
// (SeaBIOS), OVMF's PXE and UEFI HTTP boot, to the shell and NFS roots;
// and the BIOS/UEFI PXE replay.
package pc

import (
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
)

// TestMain removes the run's scratch directory (e2e/cache) at the end,
// unless `make test` shares one between the packages (RAMBOOT_E2E_RUN).
func TestMain(m *testing.M) { cache.Main(m) }
