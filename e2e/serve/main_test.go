// Package serve tests `ramboot serve` in a lab against real clients and
// peers: the Pi 4 bootloader replay, tftp-hpa, atftp and curl, dhclient
// and udhcpc, ramboot's init in proxy mode, HTTP, the service units, and
// the exported configurations run by Kea, ISC dhcpd and dnsmasq (also for
// pxelinux).
package serve

import (
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
)

// TestMain removes the run's scratch directory (e2e/cache) at the end,
// unless `make test` shares one between the packages (RAMBOOT_E2E_RUN).
func TestMain(m *testing.M) { cache.Main(m) }
