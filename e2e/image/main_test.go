// Package image checks the built boot trees without booting them: the
// rpi4 tree's files and archive contents, the same bytes twice, an offline
// rebuild from the cache, the initramfs's cpio list.
package image

import (
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
)

// TestMain removes the run's scratch directory (e2e/cache) at the end,
// unless `make test` shares one between the packages (RAMBOOT_E2E_RUN).
func TestMain(m *testing.M) { cache.Main(m) }
