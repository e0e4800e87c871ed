package serve

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
)

// TestPXELinuxNFSRoot is the classic diskless cluster (issue 13 point 3):
// isc-dhcp-server with `ramboot dhcp-config --format isc --pxelinux`,
// tftpd-hpa serving the BOARD=pc tree with the pxelinux.cfg/ `ramboot
// pxelinux` wrote from nodes.yaml, nfs-ganesha exporting each node's root
// at /srv/nodes/<name> (the Gentoo diskless recipe's layout). A QEMU BIOS
// PC (its iPXE ROM is just a PXE client here) loads Debian's pxelinux.0,
// which reads pxelinux.cfg/01-<mac> and boots ramboot's kernel and init
// by TFTP; the init mounts the node's own export and switch_roots. No
// HTTP server and no `ramboot serve` run.
func TestPXELinuxNFSRoot(t *testing.T) {
	lab.Skip(t)
	pc, _ := cache.Image(t, "pc")
	for _, f := range []string{"pxelinux.0", "ldlinux.c32", "pxelinux.cfg/default"} {
		if _, err := os.Stat(filepath.Join(pc, f)); err != nil {
			t.Fatalf("BOARD=pc did not write %s: %v", f, err)
		}
	}
	l := lab.New(t)
	tree := lab.CopyTree(t, pc) // the files at the root; pxelinux.cfg/ is written below
	const mac = "52:54:00:12:34:71"
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	// Two nodes, each with its own export: the booting one must get its own.
	lab.WriteFile(t, nodes, "defaults:\n  option224: shell\nnodes:\n"+
		"  - mac: 52:54:00:12:34:72\n    hostname: pc-12\n    option224: \"nfs://{{.Server}}/srv/nodes/{{.Hostname}}?vers=3\"\n"+
		"  - mac: "+strings.ToUpper(mac)+"\n    hostname: pc-11\n    option224: \"nfs://{{.Server}}/srv/nodes/{{.Hostname}}?vers=3\"\n")
	out, err := exec.Command(cache.Ramboot(t), "pxelinux", "--root", tree, "--nodes", nodes, "--server", lab.Addr).CombinedOutput()
	if err != nil {
		t.Fatalf("ramboot pxelinux: %v\n%s", err, out)
	}
	want := "pxelinux.cfg/01-52-54-00-12-34-71\npxelinux.cfg/01-52-54-00-12-34-72\npxelinux.cfg/default\n"
	if string(out) != want {
		t.Errorf("ramboot pxelinux wrote:\n%s\nwant:\n%s", out, want)
	}
	t.Logf("pxelinux.cfg/01-52-54-00-12-34-71:\n%s", lab.ReadFile(t, filepath.Join(tree, "pxelinux.cfg", "01-52-54-00-12-34-71")))

	mine, other := cache.NFSRoot(t, "amd64"), cache.NFSRoot(t, "amd64")
	l.Ganesha(t, lab.Export{Path: mine, Pseudo: "/srv/nodes/pc-11"}, lab.Export{Path: other, Pseudo: "/srv/nodes/pc-12"})
	l.TFTPDHPA(t, tree)
	cf := rdDHCPConfig(t, l, "isc", nodes, "--pxelinux")
	if conf := string(lab.ReadFile(t, cf)); !strings.Contains(conf, `filename "pxelinux.0";`) {
		t.Fatalf("dhcp-config --pxelinux names no pxelinux.0:\n%s", conf)
	}
	dhcpd := rdStartDHCP(t, l, "isc", cf)

	t0 := time.Now()
	vm := l.BootPC(t, mac, false)
	// iPXE (the ROM) runs Debian's pxelinux.0, which loads the kernel
	// and the initramfs by TFTP.
	vm.Expect(`Filename: pxelinux\.0`, 180*time.Second)
	vm.Expect(`pxelinux\.0 : \d+ bytes \[PXE-NBP\]`, 60*time.Second)
	// pxelinux's "Loading vmlinuz... ok" lines are not matched: the
	// firmware's console draws cursor escapes into the middle of words
	// ("Loa\x1b[25;03H\x1b[25;04Hding"). The kernel's command line below
	// and ramboot's init starting prove both files were loaded.
	// The kernel's own line: syslinux puts BOOT_IMAGE= first, then the
	// APPEND line of pxelinux.cfg/01-52-54-00-12-34-71.
	vm.Expect(`Command line: BOOT_IMAGE=vmlinuz initrd=rootfs\.cpio\.gz console=tty0 console=ttyS0,115200 ramboot\.board=pc ramboot\.224=nfs://192\.0\.2\.1/srv/nodes/pc-11\?vers=3 ramboot\.hostname=pc-11`, 180*time.Second)
	vm.Expect(`224: NFS root nfs://192\.0\.2\.1/srv/nodes/pc-11\?vers=3\S* \(from kernel command line`, 120*time.Second)
	vm.Expect(`NFSROOT-OK`, 90*time.Second)
	vm.Expect(`ROOT nfs \S*vers=3,.*nolock`, 10*time.Second)
	vm.Expect(`RW-OK /ramboot-probe`, 30*time.Second)
	t.Logf("BIOS PC via pxelinux.0 (ISC dhcpd, tftpd-hpa): power-on to its NFS root in %v", time.Since(t0).Round(time.Millisecond))
	if b, err := os.ReadFile(filepath.Join(mine, "ramboot-probe")); err != nil || !strings.HasPrefix(string(b), "written by nfsinit") {
		t.Errorf("the node's probe file is not in its export /srv/nodes/pc-11: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(other, "ramboot-probe")); err == nil {
		t.Errorf("the node wrote into the other node's export /srv/nodes/pc-12")
	}
	if !strings.Contains(dhcpd.Output(), "DHCPACK on") || !strings.Contains(dhcpd.Output(), mac) {
		t.Errorf("dhcpd logged no DHCPACK to %s:\n%s", mac, dhcpd.Output())
	}
	vm.NoPanic()
}
