// Package hostile runs `ramboot serve` under attack and load (floods,
// malformed packets, slow clients, perfdhcp) while a Pi 4 replay boots
// from it, within stated bounds of memory, goroutines, threads and files.
package hostile

import (
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
)

// TestMain removes the run's scratch directory (e2e/cache) at the end,
// unless `make test` shares one between the packages (RAMBOOT_E2E_RUN).
func TestMain(m *testing.M) { cache.Main(m) }
