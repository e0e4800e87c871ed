// Package ramroot boots whole root images into RAM (`ramboot rootfs`):
// Debian for virt and a PC, a user's tarball, and every bad input ending
// in the shell.
package ramroot

import (
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
)

// TestMain removes the run's scratch directory (e2e/cache) at the end,
// unless `make test` shares one between the packages (RAMBOOT_E2E_RUN).
func TestMain(m *testing.M) { cache.Main(m) }
