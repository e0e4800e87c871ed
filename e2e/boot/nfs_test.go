package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
)

// NFS root scenarios: dnsmasq sends option 224 naming an export that
// nfs-ganesha serves inside the lab; ramboot's init mounts it (optionally
// under a RAM overlay) and switch_roots into its /sbin/init, testdata/
// nfsinit, which reports on the console.

// nfsLab is a lab with Ganesha serving root read-write at /export and
// read-only at /ro, and dnsmasq sending option 224 value.
func nfsLab(t testing.TB, root, value string) *lab.Lab {
	t.Helper()
	l := lab.New(t)
	l.Ganesha(t, lab.Export{Path: root, Pseudo: "/export"}, lab.Export{Path: root, Pseudo: "/ro", RO: true})
	l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h", `--dhcp-option=224,"`+value+`"`)
	return l
}

// TestLabNFSRoot: a plain NFSv3 root, read-write; the probe file the
// guest writes lands in the export.
func TestLabNFSRoot(t *testing.T) {
	for _, tc := range []struct{ name, value, root string }{
		{"url v3", "nfs://192.0.2.1/export?vers=3", `ROOT nfs \S*vers=3,.*nolock`},
		{"host:path v4", "192.0.2.1:/export,vers=4", `ROOT nfs4 \S*vers=4`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := cache.Image(t, "virt")
			root := cache.NFSRoot(t, "arm64")
			l := nfsLab(t, root, tc.value)
			vm := l.Boot(t, dir, "")
			vm.Expect(`224: NFS root`, 120*time.Second)
			vm.Expect(`switch_root: /newroot, exec /sbin/init`, 60*time.Second)
			vm.Expect(`NFSROOT-OK`, 60*time.Second)
			vm.Expect(tc.root, 10*time.Second)
			vm.Expect(`RW-OK /ramboot-probe`, 30*time.Second)
			b, err := os.ReadFile(filepath.Join(root, "ramboot-probe"))
			if err != nil || !strings.HasPrefix(string(b), "written by nfsinit") {
				t.Errorf("the guest's probe file is not in the export: %q, %v", b, err)
			}
			vm.NoPanic()
		})
	}
}

// TestLabNFSRootOverlay: a read-only export under a RAM overlay: / is
// writable, and the export on this machine is left as it was.
func TestLabNFSRootOverlay(t *testing.T) {
	dir, _ := cache.Image(t, "virt")
	root := cache.NFSRoot(t, "arm64")
	before := lab.TreeDigest(t, root)
	l := nfsLab(t, root, "nfs://192.0.2.1/ro?vers=3&overlay")
	vm := l.Boot(t, dir, "")
	vm.Expect(`224: NFS root`, 120*time.Second)
	vm.Expect(`nfs: read-only export under a RAM overlay`, 60*time.Second)
	vm.Expect(`NFSROOT-OK`, 60*time.Second)
	vm.Expect(`ROOT overlay \S*lowerdir=/run/ramboot/lower,upperdir=/run/ramboot/rw/upper`, 10*time.Second)
	vm.Expect(`RW-OK /ramboot-probe`, 30*time.Second)
	if after := lab.TreeDigest(t, root); after != before {
		t.Errorf("the read-only export changed on the server:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	vm.NoPanic()
}

// TestLabNFSRootMissing: option 224 names an export that does not exist:
// the console says why and the provisioning shell answers.
func TestLabNFSRootMissing(t *testing.T) {
	dir, _ := cache.Image(t, "virt")
	root := cache.NFSRoot(t, "arm64")
	l := nfsLab(t, root, "nfs://192.0.2.1/nonexistent?vers=3")
	vm := l.Boot(t, dir, "")
	vm.Expect(`224: NFS root`, 120*time.Second)
	vm.Expect(`NFS root 192\.0\.2\.1:/nonexistent failed: .*`, 90*time.Second)
	vm.ShellRoundTrip()
	if strings.Contains(vm.Output(), "NFSROOT-OK") {
		t.Errorf("a missing export booted an NFS root")
	}
	vm.NoPanic()
}

// TestLabNFSRootBadInit: an NFS root whose init cannot run here (an x86
// program on the arm64 guest) is refused before the point of no return:
// the console says why, the export is unmounted, and the shell answers.
func TestLabNFSRootBadInit(t *testing.T) {
	dir, _ := cache.Image(t, "virt")
	root := cache.NFSRoot(t, "arm64")
	x86, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sbin", "init"), x86, 0o755); err != nil {
		t.Fatal(err)
	}
	l := nfsLab(t, root, "nfs://192.0.2.1/ro?vers=3&overlay")
	vm := l.Boot(t, dir, "")
	vm.Expect(`224: NFS root`, 120*time.Second)
	vm.Expect(`NFS root 192\.0\.2\.1:/ro failed: the new root cannot be started: /sbin/init is an amd64 program; this machine is arm64`, 90*time.Second)
	vm.ShellRoundTrip()
	vm.Send("cat /proc/mounts; echo END-$((40+2))-MOUNTS\n")
	m := vm.Expect(`(?s)cat /proc/mounts(.*?)END-42-MOUNTS`, 20*time.Second)
	for _, left := range []string{"/newroot", "/run/ramboot", "192.0.2.1:/ro"} {
		if strings.Contains(m[1], left) {
			t.Errorf("%s left mounted after the refusal:\n%s", left, m[1])
		}
	}
	if strings.Contains(vm.Output(), "NFSROOT-OK") {
		t.Errorf("an init for another architecture ran")
	}
	vm.NoPanic()
}
