// Package install installs disk images and boots what was installed
// (`install:` and `local`): virt and PCs, the inventory's lifecycle, bad
// installs, hostile disks; and BenchmarkInstall.
package install

import (
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
)

// TestMain removes the run's scratch directory (e2e/cache) at the end,
// unless `make test` shares one between the packages (RAMBOOT_E2E_RUN).
func TestMain(m *testing.M) { cache.Main(m) }
