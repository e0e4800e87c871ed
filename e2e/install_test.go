package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
)

// The datacenter lifecycle in QEMU: option 224 "install:" writes a disk
// image onto the virt machine's virtio disk, edits the written system
// (host name, root's keys, a cloud-init seed, the last partition grown)
// and boots it with "local": config.txt and cmdline.txt on its Pi-style
// boot partition, read as the Pi firmware reads them, kexec, the
// installed Debian's systemd, its login prompt under the new host name.
// And the ways an install goes wrong end in the shell with the reason,
// the disk untouched where nothing had to be written.

// diskImage is the install image, built once per run: an MBR disk with a
// FAT boot partition laid out as on a Pi (config.txt, cmdline.txt, the
// kernel and an initramfs) and an ext4 root holding the Debian root
// image's files.
var diskImage struct {
	once            sync.Once
	path, sha, name string
	rawSize         int64
	err             error
}

// installImage returns the zstd-compressed disk image's path in the
// tree's images/ and its digest.
func installImage(t *testing.T, src string) (name, sum string, rawSize int64) {
	t.Helper()
	for _, tool := range [][2]string{{"sfdisk", "fdisk"}, {"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}, {"mkfs.ext4", "e2fsprogs"}, {"unsquashfs", "squashfs-tools"}, {"zstd", "zstd"}} {
		need(t, tool[0], tool[1])
	}
	r := rootImage(t, "virt", "", "debian")
	diskImage.once.Do(func() {
		t0 := time.Now()
		diskImage.err = buildDiskImage(t, src, r.Image)
		t.Logf("install disk image: %v", time.Since(t0).Round(time.Second))
	})
	if diskImage.err != nil {
		t.Fatal(diskImage.err)
	}
	return diskImage.name, diskImage.sha, diskImage.rawSize
}

func buildDiskImage(t *testing.T, src, squash string) error {
	work, err := os.MkdirTemp("", "ramboot-disk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	sh := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	// The installed system's initramfs: ramboot's (for its modules) with
	// diskinit as /init appended.
	di := filepath.Join(work, "diskinit")
	build := exec.Command("go", "build", "-o", di, "./e2e/testdata/diskinit")
	build.Dir = srcDir(t)
	build.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building diskinit: %v\n%s", err, out)
	}
	base, err := os.ReadFile(filepath.Join(src, "rootfs.cpio.gz"))
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(di)
	if err != nil {
		return err
	}
	var extra bytes.Buffer
	zw := gzip.NewWriter(&extra)
	cw := cpio.NewWriter(zw)
	if err := cw.WriteHeader(&cpio.Header{Name: "init", Mode: cpio.TypeReg | 0o755, Size: int64(len(bin))}); err != nil {
		return err
	}
	cw.Write(bin)
	cw.Close()
	zw.Close()
	boot := filepath.Join(work, "boot")
	os.MkdirAll(boot, 0o755)
	files := map[string][]byte{
		// [pi4] does not apply on virt: the firmware's rules pick [all].
		"config.txt":  []byte("# as on a Pi\n[pi4]\nkernel=kernel8-not-this.img\n[all]\narm_64bit=1\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n"),
		"cmdline.txt": []byte("console=ttyAMA0 root=/dev/vda2 rw panic=-1\n"),
		"initrd.img":  append(base, extra.Bytes()...),
	}
	if files["vmlinuz"], err = os.ReadFile(filepath.Join(src, "Image")); err != nil {
		return err
	}
	var names []string
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(boot, n), b, 0o644); err != nil {
			return err
		}
		names = append(names, filepath.Join(boot, n))
	}
	bootImg := filepath.Join(work, "boot.img")
	if err := sh("mkfs.vfat", "-C", "-n", "BOOTFS", "-F", "32", "-i", "12345678", bootImg, "98304"); err != nil {
		return err
	}
	if err := sh("mcopy", append([]string{"-i", bootImg}, append(names, "::/")...)...); err != nil {
		return err
	}
	rootDir := filepath.Join(work, "root")
	if err := sh("unsquashfs", "-q", "-n", "-d", rootDir, squash); err != nil {
		return err
	}
	rootImg := filepath.Join(work, "root.img")
	if err := sh("mkfs.ext4", "-q", "-L", "rootfs", "-U", "6c586e13-0000-4000-8000-000000000002", "-E", "lazy_itable_init=0,root_owner=0:0",
		"-d", rootDir, rootImg, "600M"); err != nil {
		return err
	}
	// MBR: 1 MiB, the 96 MiB boot partition, the 600 MiB root.
	disk := filepath.Join(work, "disk.img")
	const bootStart, bootSectors, rootSectors = 2048, 98304 * 2, 600 * 2048
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(disk, int64(bootStart+bootSectors+rootSectors)*512); err != nil {
		return err
	}
	sf := exec.Command("sfdisk", "--quiet", disk)
	sf.Stdin = strings.NewReader(fmt.Sprintf("label: dos\nlabel-id: 0x6c586e13\nstart=%d, size=%d, type=c\nstart=%d, size=%d, type=83\n",
		bootStart, bootSectors, bootStart+bootSectors, rootSectors))
	if out, err := sf.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %v\n%s", err, out)
	}
	for _, p := range []struct {
		img string
		at  int
	}{{bootImg, bootStart}, {rootImg, bootStart + bootSectors}} {
		if err := sh("dd", "if="+p.img, "of="+disk, "bs=512", "seek="+fmt.Sprint(p.at), "conv=notrunc,sparse", "status=none"); err != nil {
			return err
		}
	}
	fi, _ := os.Stat(disk)
	diskImage.rawSize = fi.Size()
	diskImage.name = "debian-disk.img.zst"
	out := filepath.Join(src, "images", diskImage.name)
	os.MkdirAll(filepath.Dir(out), 0o755)
	if err := sh("zstd", "-q", "-f", "-T0", "-3", disk, "-o", out); err != nil {
		return err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	s := sha256.Sum256(b)
	diskImage.sha = hex.EncodeToString(s[:])
	diskImage.path = out
	return nil
}

// bootWithDisk boots the virt machine from the tree with a virtio disk.
func bootWithDisk(t *testing.T, l *Lab, src, disk, extra string) *VM {
	t.Helper()
	return StartVM(t, "ip", "netns", "exec", l.NS, qemu(t),
		"-M", "virt", "-cpu", "cortex-a72", "-m", "1536", "-smp", "2",
		"-nographic", "-no-reboot",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
		"-drive", "if=none,id=d0,format=raw,file="+disk,
		"-device", "virtio-blk-pci,drive=d0",
		"-kernel", filepath.Join(src, "Image"),
		"-initrd", filepath.Join(src, "rootfs.cpio.gz"),
		"-append", strings.TrimSpace("console=ttyAMA0 panic=-1 "+extra))
}

// newDisk makes a sparse raw disk of size bytes in dir, filled with a
// marker in its first sector so that a test can tell "untouched".
func newDisk(t *testing.T, dir string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(p, bytes.Repeat([]byte("UNTOUCHED"), 56), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInstallThenLocalVirt: install, edit, then boot the installed system
// with "local" (then=local), to its login prompt under the new name; then
// a second boot of the same disk with option 224 "local" alone.
func TestInstallThenLocalVirt(t *testing.T) {
	labSkip(t)
	src, _ := image(t, "virt")
	name, sum, rawSize := installImage(t, src)
	l := NewLab(t)
	l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--dhcp-host=52:54:00:12:34:56,192.0.2.122")
	srv := svStart(t, l, src, "--dhcp", "off")
	_ = srv
	// root's keys and the seed, served by the tree.
	key, _ := sshKeys(t)
	pub, _ := os.ReadFile(key + ".pub")
	os.MkdirAll(filepath.Join(src, "seed", "n1"), 0o755)
	os.WriteFile(filepath.Join(src, "keys-n1"), pub, 0o644)
	os.WriteFile(filepath.Join(src, "seed", "n1", "user-data"), []byte("#cloud-config\nhostname: n1\n"), 0o644)
	os.WriteFile(filepath.Join(src, "seed", "n1", "meta-data"), []byte("instance-id: n1-e2e\n"), 0o644)
	disk := newDisk(t, t.TempDir(), 2<<30)

	v := "install:http://192.0.2.1:8080/images/" + name + "#sha256=" + sum +
		"&hostname=n1&keys=http://192.0.2.1:8080/keys-n1&seed=http://192.0.2.1:8080/seed/n1&then=local"
	t0 := time.Now()
	vm := bootWithDisk(t, l, src, disk, "ramboot.224="+v)
	vm.Expect(`224: install http://192\.0\.2\.1:8080/images/`+name+` onto auto`, 120*time.Second)
	vm.Expect(`install: started .* -> /dev/vda`, 30*time.Second)
	m := vm.Expect(`install: wrote ([\d.]+ [KMG]i?B) to /dev/vda in ([\d.]+m?s) \(([\d.]+ [KMG]i?B/s)\); sha256 verified`, 600*time.Second)
	t.Logf("install: %s in %s (%s), %d bytes raw", m[1], m[2], m[3], rawSize)
	vm.Expect(`install: host name n1`, 60*time.Second)
	vm.Expect(`install: root's authorized_keys`, 30*time.Second)
	vm.Expect(`install: cloud-init seed on`, 30*time.Second)
	vm.Expect(`install done: /dev/vda sha256=`+sum, 30*time.Second)
	vm.Expect(`local: booting /dev/vda1 \(config\.txt: vmlinuz\)`, 60*time.Second)
	vm.Expect(`diskinit: switch_root to /dev/vda2`, 120*time.Second)
	vm.Expect(`(?m)^n1 login:`, 300*time.Second)
	t.Logf("option 224 to the installed system's login prompt: %v", time.Since(t0).Round(time.Second))
	noPanic(t, vm)
	vm.Stop()

	// What the install left on the disk: the seed on the boot partition,
	// the root partition grown to the disk's end (2 GiB).
	out, err := exec.Command("sfdisk", "--dump", disk).CombinedOutput()
	if err != nil || !regexp.MustCompile(`start=\s*198656, size=\s*3995648, type=83`).Match(out) {
		t.Errorf("partition 2 not grown to the disk's end (want 3995648 sectors from 198656):\n%s", out)
	}
	if out, err := exec.Command("mtype", "-i", disk+"@@1M", "::/user-data").CombinedOutput(); err != nil || !strings.Contains(string(out), "hostname: n1") {
		t.Errorf("the seed's user-data on the boot partition: %v\n%s", err, out)
	}

	// A second boot, option 224 "local": no install, straight to the
	// installed system.
	t1 := time.Now()
	vm = bootWithDisk(t, l, src, disk, "ramboot.224=local")
	vm.Expect(`local: booting /dev/vda1 \(config\.txt: vmlinuz\)`, 120*time.Second)
	at := time.Since(t1)
	vm.Expect(`(?m)^n1 login:`, 300*time.Second)
	t.Logf("local boot: option 224 to kexec %v, to the login prompt %v", at.Round(time.Second), time.Since(t1).Round(time.Second))
	noPanic(t, vm)
}

// TestInstallBadInputs: each wrong install ends in the provisioning shell
// with its reason; where the failure comes before writing, the disk is
// untouched.
func TestInstallBadInputs(t *testing.T) {
	labSkip(t)
	src, _ := image(t, "virt")
	name, sum, _ := installImage(t, src)
	r := rootImage(t, "virt", "", "debian")
	l := NewLab(t)
	l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h")
	svStart(t, l, src, "--dhcp", "off")
	bad := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, value, want string
		size              int64
		touched           bool
	}{
		{"not a disk image", "install:http://192.0.2.1:8080/images/" + filepath.Base(r.Image) + "#sha256=" + r.SHA256,
			`is not a disk image: its first sector has no partition table`, 1 << 30, false},
		{"disk too small", "install:http://192.0.2.1:8080/images/" + name + "#sha256=" + sum,
			`larger than /dev/vda|image larger than device|bigger device`, 64 << 20, true},
		{"no such disk", "install:http://192.0.2.1:8080/images/" + name + "#sha256=" + sum + "&disk=/dev/vdz",
			`disk=/dev/vdz: .*no such file or directory`, 1 << 30, false},
		{"digest mismatch", "install:http://192.0.2.1:8080/images/" + name + "#sha256=" + bad,
			`SHA-256 MISMATCH`, 1 << 30, true},
		{"nothing installed", "local", `nothing bootable on the node's disks \(/dev/vda\)`, 1 << 30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := newDisk(t, t.TempDir(), tc.size)
			vm := bootWithDisk(t, l, src, disk, "ramboot.224="+tc.value)
			vm.Expect(`(install failed|local boot failed): .*(`+tc.want+`)`, 600*time.Second)
			shellRoundTrip(t, vm)
			noPanic(t, vm)
			vm.Stop()
			head := make([]byte, 9)
			f, _ := os.Open(disk)
			f.Read(head)
			f.Close()
			if !tc.touched && string(head) != "UNTOUCHED" {
				t.Errorf("the disk was written: its first bytes are %q", head)
			}
		})
	}
}
