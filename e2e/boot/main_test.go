// Package boot boots the built images in QEMU (virt, raspi4b, raspi3b)
// from the kernel command line or from real dnsmasq in a lab: option 224's
// actions (shell, chain, NFS roots from nfs-ganesha, SSH), the mixed Pi
// tree and the Pi 3 and Pi 5 bootloader replays.
package boot

import (
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
)

// TestMain removes the run's scratch directory (e2e/cache) at the end,
// unless `make test` shares one between the packages (RAMBOOT_E2E_RUN).
func TestMain(m *testing.M) { cache.Main(m) }
