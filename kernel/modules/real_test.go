package modules

import (
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/testenv"
)

// TestRealTree runs on a real module tree, e.g. one extracted from Debian's
// linux-image .deb:
//
//	RAMBOOT_KERNEL_TREE=/tmp/kdeb/root/usr/lib/modules/6.12.117+deb13-arm64 go test -run Real -v ./kernel/modules/
func TestRealTree(t *testing.T) {
	root := os.Getenv("RAMBOOT_KERNEL_TREE")
	if root == "" {
		testenv.Skip(t, "set RAMBOOT_KERNEL_TREE=/path/to/lib/modules/<kver> to run (make test does)")
	}
	lists := []struct {
		board string
		names []string
	}{
		{"rpi4", []string{"genet", "mdio-bcm-unimac", "broadcom", "nfs", "nfsv3", "nfsv4", "overlay"}},
		{"virt", []string{"virtio_net", "virtio_pci", "virtio_blk", "nfs", "nfsv3", "nfsv4", "overlay"}},
		{"aliases", []string{"fs-overlay", "crc32c", "ext4"}},
	}
	for _, l := range lists {
		t.Run(l.board, func(t *testing.T) {
			start := time.Now()
			tree, err := Open(root) // a fresh Tree: a cold Closure
			if err != nil {
				t.Fatal(err)
			}
			opened := time.Now()
			res, err := tree.Closure(l.names)
			if err != nil {
				t.Fatal(err)
			}
			closed := time.Now()
			var total int
			for _, m := range res.Modules {
				data, err := tree.ReadPlain(m)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ReadModInfo(data); err != nil {
					t.Errorf("%s: %v", m.Path, err)
				}
				total += len(data)
				t.Logf("  %-20s %8d  %s", m.Name, len(data), m.Path)
			}
			t.Logf("%s: %d modules, %d bytes decompressed; built in: %v; ignored softdeps: %v",
				l.board, len(res.Modules), total, res.Builtin, res.IgnoredSoftdeps)
			t.Logf("Open %v, Closure %v (cold), ReadPlain %v", opened.Sub(start), closed.Sub(opened), time.Since(closed))
			t.Logf("modules.dep:\n%s", ModulesDep(res.Modules))
			t.Logf("modules.softdep:\n%s", ModulesSoftdep(res.Modules))
			if !strings.Contains(string(LoadOrder(res.Modules)), ".ko\n") {
				t.Error("empty load order")
			}
			seen := map[string]bool{}
			for _, m := range res.Modules {
				for _, d := range append(append([]string(nil), m.Depends...), m.SoftPre...) {
					if _, ok := tree.byName[d]; ok && !seen[d] {
						t.Errorf("%s is loaded before its dependency %s", m.Name, d)
					}
				}
				seen[m.Name] = true
			}
		})
	}
}

// TestRealTreeAll computes the closure of every module in a real tree: all
// depends= must resolve and there must be no cycle of them.
func TestRealTreeAll(t *testing.T) {
	root := os.Getenv("RAMBOOT_KERNEL_TREE")
	if root == "" {
		testenv.Skip(t, "set RAMBOOT_KERNEL_TREE=/path/to/lib/modules/<kver> to run (make test does)")
	}
	tree, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for n, es := range tree.byName {
		if len(es) == 1 {
			all = append(all, n)
		}
	}
	sort.Strings(all)
	start := time.Now()
	res, err := tree.Closure(all)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d names, %d modules in the closure in %v; built in: %v; ignored softdeps: %v",
		len(all), len(res.Modules), time.Since(start), res.Builtin, res.IgnoredSoftdeps)
	var soft []string
	for _, line := range strings.Split(string(ModulesSoftdep(res.Modules)), "\n") {
		if strings.HasPrefix(line, "softdep ") {
			soft = append(soft, line)
		}
	}
	t.Logf("%d modules have softdeps; the first few:\n%s", len(soft), strings.Join(soft[:min(10, len(soft))], "\n"))
}
