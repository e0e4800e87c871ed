// Package bench holds `make bench`: build time and size against u-root's
// mkuimage, the init against u-root's, the server against tftpd-hpa and
// dnsmasq, metrics scrapes and RAM-root boots. Only benchmarks: `go test
// -bench . ./e2e/bench/`.
package bench

import (
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
)

// TestMain removes the run's scratch directory (e2e/cache) at the end,
// unless `make test` shares one between the packages (RAMBOOT_E2E_RUN).
func TestMain(m *testing.M) { cache.Main(m) }
