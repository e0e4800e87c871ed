package install

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
)

// The datacenter lifecycle in QEMU: option 224 "install:" writes a disk
// image onto the virt machine's virtio disk, edits the written system
// (host name, root's keys, a cloud-init seed, the last partition grown)
// and boots it with "local": config.txt and cmdline.txt on its Pi-style
// boot partition, read as the Pi firmware reads them, kexec, the
// installed Debian's systemd, its login prompt under the new host name.
// And the ways an install goes wrong end in the shell with the reason,
// the disk untouched where nothing had to be written.

// diskImage is an install image, built once per run and board:
//
//   - virt: an MBR disk with a FAT boot partition laid out as on a Pi
//     (config.txt, cmdline.txt, the kernel and an initramfs) and an ext4
//     root holding the Debian root image's files;
//   - pc: a GPT disk with an EFI system partition and an ext4 root whose
//     /boot holds the kernel, the initramfs and GRUB's grub.cfg (a default
//     entry and a recovery one), as Debian lays it out.
type diskImage struct {
	once            sync.Once
	path, sha, name string
	rawSize         int64
	err             error
}

var diskImages sync.Map // board -> *diskImage

// installImage returns the zstd-compressed disk image's name in the
// tree's images/, its digest and its raw size.
func installImage(t testing.TB, board, src string) (name, sum string, rawSize int64) {
	t.Helper()
	for _, tool := range [][2]string{{"sfdisk", "fdisk"}, {"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}, {"mkfs.ext4", "e2fsprogs"}, {"unsquashfs", "squashfs-tools"}, {"zstd", "zstd"}} {
		lab.Need(t, tool[0], tool[1])
	}
	r := cache.RootImage(t, board, "", "debian")
	v, _ := diskImages.LoadOrStore(board, &diskImage{})
	d := v.(*diskImage)
	d.once.Do(func() {
		t0 := time.Now()
		d.err = buildDiskImage(t, d, board, src, r.Image)
		t.Logf("install disk image for %s: %v", board, time.Since(t0).Round(time.Second))
	})
	if d.err != nil {
		t.Fatal(d.err)
	}
	return d.name, d.sha, d.rawSize
}

func buildDiskImage(t testing.TB, diskImage *diskImage, board, src, squash string) error {
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
	build.Dir = cache.SrcDir()
	goarch := map[string]string{"virt": "arm64", "pc": "amd64"}[board]
	build.Env = append(os.Environ(), "GOARCH="+goarch, "CGO_ENABLED=0")
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
	initrd := append(base, extra.Bytes()...)
	kernelFile := map[string]string{"virt": "Image", "pc": "vmlinuz"}[board]
	kernel, err := os.ReadFile(filepath.Join(src, kernelFile))
	if err != nil {
		return err
	}
	boot := filepath.Join(work, "boot")
	os.MkdirAll(boot, 0o755)
	rootDir := filepath.Join(work, "root")
	if err := sh("unsquashfs", "-q", "-n", "-d", rootDir, squash); err != nil {
		return err
	}
	files := map[string][]byte{}
	switch board {
	case "virt":
		// [pi4] does not apply on virt: the firmware's rules pick [all].
		files["config.txt"] = []byte("# as on a Pi\n[pi4]\nkernel=kernel8-not-this.img\n[all]\narm_64bit=1\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n")
		files["cmdline.txt"] = []byte("console=ttyAMA0 root=/dev/vda2 rw panic=-1\n")
		files["initrd.img"] = initrd
		files["vmlinuz"] = kernel
	case "pc":
		files["EFI/BOOT/README"] = []byte("the EFI system partition\n")
		grub := "set default=0\nset timeout=5\n\n" +
			"menuentry 'Debian GNU/Linux' --class debian {\n\tlinux /boot/vmlinuz root=/dev/vda2 rw console=ttyS0 panic=-1\n\tinitrd /boot/initrd.img\n}\n" +
			"menuentry 'Debian GNU/Linux (recovery mode)' {\n\tlinux /boot/vmlinuz root=/dev/vda2 ro single console=ttyS0\n\tinitrd /boot/initrd.img\n}\n"
		os.MkdirAll(filepath.Join(rootDir, "boot", "grub"), 0o755)
		for n, b := range map[string][]byte{"boot/vmlinuz": kernel, "boot/initrd.img": initrd, "boot/grub/grub.cfg": []byte(grub)} {
			if err := os.WriteFile(filepath.Join(rootDir, n), b, 0o644); err != nil {
				return err
			}
		}
	}
	var names []string
	for n, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(boot, n)), 0o755)
		if err := os.WriteFile(filepath.Join(boot, n), b, 0o644); err != nil {
			return err
		}
		if !strings.Contains(n, "/") {
			names = append(names, filepath.Join(boot, n))
		}
	}
	if board == "pc" {
		names = append(names, filepath.Join(boot, "EFI"))
	}
	bootImg := filepath.Join(work, "boot.img")
	if err := sh("mkfs.vfat", "-C", "-n", "BOOTFS", "-F", "32", "-i", "12345678", bootImg, "65536"); err != nil {
		return err
	}
	if err := sh("mcopy", append([]string{"-s", "-i", bootImg}, append(names, "::/")...)...); err != nil {
		return err
	}
	rootImg := filepath.Join(work, "root.img")
	if err := sh("mkfs.ext4", "-q", "-L", "rootfs", "-U", "6c586e13-0000-4000-8000-000000000002", "-E", "lazy_itable_init=0,root_owner=0:0",
		"-d", rootDir, rootImg, "520M"); err != nil {
		return err
	}
	// 1 MiB, the 64 MiB boot partition, the 520 MiB root (and 1 MiB for
	// GPT's backup table).
	disk := filepath.Join(work, "disk.img")
	const bootStart, bootSectors, rootSectors = 2048, 65536 * 2, 520 * 2048
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(disk, int64(bootStart+bootSectors+rootSectors+2048)*512); err != nil {
		return err
	}
	table := fmt.Sprintf("label: dos\nlabel-id: 0x6c586e13\nstart=%d, size=%d, type=c\nstart=%d, size=%d, type=83\n",
		bootStart, bootSectors, bootStart+bootSectors, rootSectors)
	if board == "pc" {
		table = fmt.Sprintf("label: gpt\nstart=%d, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n",
			bootStart, bootSectors, bootStart+bootSectors, rootSectors)
	}
	sf := exec.Command("sfdisk", "--quiet", disk)
	sf.Stdin = strings.NewReader(table)
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
	diskImage.name = "debian-" + board + "-disk.img.zst"
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

// bootWithDisk boots the virt machine from the tree with a virtio disk;
// it powers off when the guest reboots.
func bootWithDisk(t testing.TB, l *lab.Lab, src, disk, extra string) *qemu.VM {
	return bootWithDiskOpt(t, l, src, disk, extra, "-no-reboot")
}

// bootWithDiskOpt is bootWithDisk with a reboot option: "-no-reboot", or
// "" for a machine that restarts (from the network, as a datacenter's do).
// qemuArgs are added to QEMU's command line (more devices).
func bootWithDiskOpt(t testing.TB, l *lab.Lab, src, disk, extra, reboot string, qemuArgs ...string) *qemu.VM {
	t.Helper()
	return qemu.Boot(t, diskGuest(l, src, disk, extra, reboot, qemuArgs...))
}

// diskGuest is the guest bootWithDiskOpt boots.
func diskGuest(l *lab.Lab, src, disk, extra, reboot string, qemuArgs ...string) qemu.Options {
	o := l.Guest(src, extra)
	o.Memory = "1536"
	o.Reboot = reboot == ""
	o.Extra = append([]string{"-drive", "if=none,id=d0,format=raw,file=" + disk, "-device", "virtio-blk-pci,drive=d0"}, qemuArgs...)
	return o
}

// newDisk makes a sparse raw disk of size bytes in dir, filled with a
// marker in its first sector so that a test can tell "untouched".
func newDisk(t testing.TB, dir string, size int64) string {
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

// TestInstallBadInputs: each wrong install ends in the provisioning shell
// with its reason; where the failure comes before writing, the disk is
// untouched.
func TestInstallBadInputs(t *testing.T) {
	lab.Skip(t)
	src, _ := cache.Image(t, "virt")
	name, sum, _ := installImage(t, "virt", src)
	r := cache.RootImage(t, "virt", "", "debian")
	l := lab.New(t)
	l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h")
	l.Serve(t, src, "--dhcp", "off")
	bad := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, value, want string
		size              int64
		touched           bool
		// lateDisk: a SCSI disk hot-plugged once the init looks for
		// disk=auto's disk, as an NVMe or SCSI disk still being probed.
		lateDisk bool
	}{
		{"not a disk image", "install:http://192.0.2.1:8080/images/" + filepath.Base(r.Image) + "#sha256=" + r.SHA256,
			`is not a disk image: its first sector has no partition table`, 1 << 30, false, false},
		{"disk too small", "install:http://192.0.2.1:8080/images/" + name + "#sha256=" + sum,
			`larger than /dev/vda|image larger than device|bigger device`, 64 << 20, true, false},
		{"no such disk", "install:http://192.0.2.1:8080/images/" + name + "#sha256=" + sum + "&disk=/dev/vdz",
			`disk=/dev/vdz: .*no such file or directory`, 1 << 30, false, false},
		{"digest mismatch", "install:http://192.0.2.1:8080/images/" + name + "#sha256=" + bad,
			`SHA-256 MISMATCH`, 1 << 30, true, false},
		{"nothing installed", "local", `nothing bootable on the node's disks \(/dev/vda\)`, 1 << 30, false, false},
		// disk=auto waits for the disks to settle: the disk that appears
		// seconds later makes two, and two are refused, by name.
		{"second disk appears late", "install:http://192.0.2.1:8080/images/" + name + "#sha256=" + sum,
			`disk=auto: several internal disks \(/dev/sda, /dev/vda\).*/dev/sda is /dev/disk/by-id/wwn-0x5000c500a1b2c3d4`, 1 << 30, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := newDisk(t, t.TempDir(), tc.size)
			disks := []string{disk}
			var qemuArgs []string
			if tc.lateDisk {
				disks = append(disks, newDisk(t, t.TempDir(), 1<<30))
				qemuArgs = []string{"-device", "virtio-scsi-pci,id=scsi0", "-drive", "if=none,id=late,format=raw,file=" + disks[1]}
			}
			vm := bootWithDiskOpt(t, l, src, disk, "ramboot.224="+tc.value, "-no-reboot", qemuArgs...)
			var plugged time.Time
			if tc.lateDisk {
				vm.Expect(`224: install .* onto auto`, 600*time.Second)
				plugged = time.Now()
				vm.Monitor("device_add scsi-hd,drive=late,bus=scsi0.0,id=late0,wwn=0x5000c500a1b2c3d4")
			}
			vm.Expect(`(install failed|local boot failed): .*(`+tc.want+`)`, 600*time.Second)
			if tc.lateDisk {
				t.Logf("refused %v after the hot-plug", time.Since(plugged).Round(100*time.Millisecond))
			}
			vm.ShellRoundTrip()
			vm.NoPanic()
			vm.Stop()
			for _, d := range disks {
				head := make([]byte, 9)
				f, _ := os.Open(d)
				f.Read(head)
				f.Close()
				if !tc.touched && string(head) != "UNTOUCHED" {
					t.Errorf("the disk %s was written: its first bytes are %q", filepath.Base(d), head)
				}
			}
		})
	}
}

// TestInstallLocalPC: a BIOS PC (iPXE from serve, option 224 from the
// inventory) installs the pc disk image and boots it at once
// (then=local): GRUB's grub.cfg on the root partition, its default entry,
// kexec, the login prompt under the new host name. Then the same disk on
// a UEFI PC with option 224 "local".
func TestInstallLocalPC(t *testing.T) {
	lab.Skip(t)
	src, _ := cache.Image(t, "pc")
	name, sum, _ := installImage(t, "pc", src)
	disk := newDisk(t, t.TempDir(), 2<<30)
	drive := []string{"-drive", "if=none,id=d0,format=raw,file=" + disk, "-device", "virtio-blk-pci,drive=d0"}
	const mac = "52:54:00:12:34:60"
	{
		l := lab.New(t)
		router := l.Peer(t, "192.0.2.2")
		l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
		l.ServeNode(t, src, mac, "pc-n1", "install:http://{{.Server}}:8080/images/"+name+"#sha256="+sum+"&disk=/dev/vda&hostname=pc-n1&then=local", "--dhcp", "proxy")
		t0 := time.Now()
		vm := l.BootPC(t, mac, false, drive...)
		vm.Expect(`224: install http://192\.0\.2\.1:8080/images/`+name+` onto /dev/vda`, 240*time.Second)
		m := vm.Expect(`install: (?:flash: )?wrote ([\d.]+ [KMG]i?B) to /dev/vda in ([\dhm.]+s) \(([\d.]+ [KMG]i?B/s)\); sha256 verified`, 600*time.Second)
		t.Logf("BIOS PC install: %s in %s (%s)", m[1], m[2], m[3])
		vm.Expect(`install done: /dev/vda sha256=`+sum, 60*time.Second)
		vm.Expect(`local: booting /dev/vda2 \(grub: Debian GNU/Linux\)`, 60*time.Second)
		vm.Expect(`diskinit: switch_root to /dev/vda2`, 120*time.Second)
		vm.Expect(`(?m)^pc-n1 login:`, 300*time.Second)
		t.Logf("BIOS PC: option 224 to the installed system's login prompt: %v", time.Since(t0).Round(time.Second))
		vm.NoPanic()
		vm.Stop()
	}
	{
		l := lab.New(t)
		router := l.Peer(t, "192.0.2.2")
		l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
		l.ServeNode(t, src, mac, "pc-n1", "local", "--dhcp", "proxy")
		t0 := time.Now()
		vm := l.BootPC(t, mac, true, drive...)
		vm.Expect(`224: local`, 240*time.Second)
		vm.Expect(`local: booting /dev/vda2 \(grub: Debian GNU/Linux\)`, 60*time.Second)
		vm.Expect(`(?m)^pc-n1 login:`, 300*time.Second)
		t.Logf("UEFI PC: local boot to the login prompt: %v", time.Since(t0).Round(time.Second))
		vm.NoPanic()
	}
}

// TestInstallLifecycleVirt: the inventory drives it. A node whose entry
// says install: (with a host name, root's keys and a cloud-init seed)
// gets the install form; the power fails mid-write (QEMU
// killed), the server's record says installing, and the next boot gets
// the install again; that one finishes, the node reports install done and
// reboots, and from then on the server hands it "local": the installed
// system boots to its login prompt, SSH logs in with the key, the seed is
// on the boot partition and the root partition fills the disk.
//
// Then the install done is lost (the record is put back to installing,
// as if the report had never arrived) and the customer writes to the
// disk: the next boot gets the install form again, finds the install
// record on the disk, writes nothing (every byte of the disk image is
// the same after the boot), reports it, and the server has the node
// installed. An operator's `ramboot node reinstall` draws a new
// generation: that boot re-flashes the disk (the customer's file is gone).
func TestInstallLifecycleVirt(t *testing.T) {
	lab.Skip(t)
	src, _ := cache.Image(t, "virt")
	name, sum, _ := installImage(t, "virt", src)
	l := lab.New(t)
	router := l.Peer(t, "192.0.2.2")
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--dhcp-host=52:54:00:12:34:56,192.0.2.123", "--no-ping")
	// root's keys and a cloud-init seed, served from the tree. With them
	// option 224 is longer than one DHCP option (255 bytes): it goes out
	// split, as RFC 3396 says, and the init joins it.
	// A key of its own: the root image already has the run's key, and
	// keys= must replace it.
	key := filepath.Join(t.TempDir(), "id-n2")
	lab.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
	pub, _ := os.ReadFile(key + ".pub")
	os.MkdirAll(filepath.Join(src, "seed", "n2"), 0o755)
	os.WriteFile(filepath.Join(src, "keys-n2"), pub, 0o644)
	os.WriteFile(filepath.Join(src, "seed", "n2", "user-data"), []byte("#cloud-config\nhostname: n2\n"), 0o644)
	os.WriteFile(filepath.Join(src, "seed", "n2", "meta-data"), []byte("instance-id: n2-e2e\n"), 0o644)
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	state := filepath.Join(l.Dir, "state.json")
	disk := newDisk(t, t.TempDir(), 2<<30)
	// Its BMC (step 4): ipmi_sim, whose power runs the guest with the disk.
	bmcDir := t.TempDir()
	console := filepath.Join(bmcDir, "console.log")
	pass, _ := l.IPMISim(t, l.GuestScript(t, bmcDir, diskGuest(l, src, disk, "", "-no-reboot"), console))
	lab.WriteFile(t, nodes, "nodes:\n  - mac: 52:54:00:12:34:56\n    hostname: n2\n"+
		"    power: {driver: ipmi, address: "+lab.Addr+", username: admin, password_file: "+pass+", cycle_wait: 1}\n    install:\n"+
		"      image: \"http://{{.Server}}:8080/images/"+name+"\"\n      sha256: "+sum+"\n      disk: /dev/vda\n"+
		"      keys: \"http://{{.Server}}:8080/keys-n2#sha256="+fmt.Sprintf("%x", sha256.Sum256(pub))+"\"\n      seed: \"http://{{.Server}}:8080/seed/n2#sha256="+fmt.Sprintf("%x,%x", sha256.Sum256([]byte("#cloud-config\nhostname: n2\n")), sha256.Sum256([]byte("instance-id: n2-e2e\n")))+"\"\n")
	l.Serve(t, src, "--dhcp", "proxy", "--nodes", nodes, "--state-file", state)
	nodeCmd := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cache.Ramboot(t), append([]string{"node"}, append(args, "--state-file", state, "--nodes", nodes)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ramboot node %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	const mac = "52:54:00:12:34:56"

	// 1. The power fails while the image is written.
	vm := bootWithDisk(t, l, src, disk, "")
	vm.Expect(`224: install http://192\.0\.2\.1:8080/images/`+name+` onto /dev/vda`, 120*time.Second)
	vm.Expect(`install: flash: .* written, .*%`, 300*time.Second)
	vm.Stop()
	if out := nodeCmd("list"); !regexp.MustCompile(`(?m)^n2\s+` + mac + `\s+installing\s+1\s`).MatchString(out) {
		t.Errorf("after a power cut mid-write the server's record is not installing at generation 1:\n%s", out)
	} else {
		t.Logf("after the power cut:\n%s", out)
	}
	if rec := stateRecord(t, state, mac); rec.State != "installing" || rec.Generation != 1 {
		t.Errorf("after a power cut mid-write the state file has %+v, want installing at generation 1", rec)
	}

	// 2. The next boot installs again, reports, reboots into ramboot, gets
	// local and boots the installed system.
	t0 := time.Now()
	vm = bootWithDiskOpt(t, l, src, disk, "", "")
	vm.Expect(`224: install http://192\.0\.2\.1:8080/images/`+name, 120*time.Second)
	m := vm.Expect(`install: (?:flash: )?wrote ([\d.]+ [KMG]i?B) to /dev/vda in ([\dhm.]+s) \(([\d.]+ [KMG]i?B/s)\); sha256 verified`, 600*time.Second)
	t.Logf("install: %s in %s (%s)", m[1], m[2], m[3])
	vm.Expect(`install: host name n2`, 60*time.Second)
	vm.Expect(`install: root's authorized_keys`, 30*time.Second)
	vm.Expect(`install: cloud-init seed on`, 30*time.Second)
	vm.Expect(`install: install record \(generation 1\) on /dev/vda2:/var/lib/ramboot/install\.json`, 30*time.Second)
	vm.Expect(`install done: /dev/vda sha256=`+sum+` gen=1\r?\n`, 60*time.Second)
	vm.Expect(`install: rebooting into the installed system`, 60*time.Second)
	vm.Expect(`224: local \(from `, 180*time.Second)
	vm.Expect(`local: booting /dev/vda1 \(config\.txt: vmlinuz\)`, 60*time.Second)
	vm.Expect(`(?m)^n2 login:`, 300*time.Second)
	t.Logf("install, reboot, local boot to the login prompt: %v", time.Since(t0).Round(time.Second))
	// root's key from keys= logs in to the installed system.
	var sshOut string
	for deadline := time.Now().Add(240 * time.Second); ; time.Sleep(3 * time.Second) {
		out, err := l.Exec(t, 60*time.Second, "ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "root@192.0.2.123", "hostname; findmnt -no SOURCE /")
		if err == nil || time.Now().After(deadline) {
			sshOut = out
			break
		}
	}
	if !strings.Contains(sshOut, "n2") || !strings.Contains(sshOut, "/dev/vda2") {
		t.Errorf("ssh with the keys= key into the installed system: %q, want host name n2 and root /dev/vda2", sshOut)
	}
	// The run's key, which the image had, is gone: keys= replaced it.
	if out, err := l.SSH(t, "192.0.2.123", "true"); err == nil {
		t.Errorf("the image's own key still logs in after keys= replaced root's authorized_keys: %s", out)
	}
	vm.NoPanic()
	vm.Stop()
	// What the install left on the disk: the seed on the boot partition,
	// the root partition grown to the disk's end (2 GiB), less the 33
	// sectors cloud-utils' growpart keeps free there too.
	out, err := exec.Command("sfdisk", "--dump", disk).CombinedOutput()
	if err != nil || !regexp.MustCompile(`start=\s*133120, size=\s*4061151, type=83`).Match(out) {
		t.Errorf("partition 2 not grown to the disk's end (want 4061151 sectors from 133120, 33 left free):\n%s", out)
	}
	if out, err := exec.Command("mtype", "-i", disk+"@@1M", "::/user-data").CombinedOutput(); err != nil || !strings.Contains(string(out), "hostname: n2") {
		t.Errorf("the seed's user-data on the boot partition: %v\n%s", err, out)
	}
	if out := nodeCmd("list"); !regexp.MustCompile(`(?m)^n2\s.*\binstalled\b`).MatchString(out) {
		t.Errorf("the server does not have the node installed:\n%s", out)
	}

	// 3. The install done never reached the server: its record says
	// installing again, at the same generation (rewritten while the server
	// runs: it reads a changed state file again). The customer has written
	// to the disk since.
	lostReport(t, state, mac)
	if out := nodeCmd("list"); !regexp.MustCompile(`(?m)^n2\s+` + mac + `\s+installing\s+1\s`).MatchString(out) {
		t.Fatalf("the record was not put back to installing:\n%s", out)
	}
	marker := filepath.Join(t.TempDir(), "customer-data.txt")
	os.WriteFile(marker, []byte("the customer's data, written after the install\n"), 0o644)
	lab.Run(t, "mcopy", "-o", "-i", disk+"@@1M", marker, "::/customer-data.txt")
	before := diskSums(t, disk)
	t0 = time.Now()
	vm = bootWithDisk(t, l, src, disk, "")
	vm.Expect(`224: install http://192\.0\.2\.1:8080/images/`+name+` onto /dev/vda`, 120*time.Second)
	vm.Expect(`install: /dev/vda holds /dev/vda2:/var/lib/ramboot/install\.json \(generation 1, sha256=`+sum+`, \S+\): the install asks for generation 1, so the disk is kept`, 60*time.Second)
	vm.Expect(`install done: /dev/vda sha256=`+sum+` gen=1 already installed at generation 1 on \S+ \(/dev/vda2:/var/lib/ramboot/install\.json\): the disk is not written`, 120*time.Second)
	vm.Expect(`install: rebooting into the installed system`, 60*time.Second)
	select {
	case <-vm.Done(): // -no-reboot: the reboot ends QEMU
	case <-time.After(60 * time.Second):
		t.Errorf("QEMU did not exit at the node's reboot")
	}
	kept := time.Since(t0).Round(time.Second)
	if out := vm.Output(); strings.Contains(out, "install: started") || strings.Contains(out, "install: flash:") {
		t.Errorf("the boot with the install already on the disk wrote it:\n%s", qemu.TailLines(out, 40))
	}
	vm.NoPanic()
	vm.Stop()
	after := diskSums(t, disk)
	if diff := before.differ(after); len(diff) > 0 {
		t.Errorf("the disk changed in %d of its %d MiB (at MiB %v): the init wrote a disk that held its install", len(diff), len(before.mib), diff[:min(len(diff), 20)])
	}
	if out, err := exec.Command("mtype", "-i", disk+"@@1M", "::/customer-data.txt").CombinedOutput(); err != nil || !strings.Contains(string(out), "the customer's data") {
		t.Errorf("the customer's file after the boot: %v %s", err, out)
	}
	if rec := stateRecord(t, state, mac); rec.State != "installed" || rec.Generation != 1 || !strings.Contains(rec.Detail, "already installed") {
		t.Errorf("the server did not learn the install from the next boot: %+v", rec)
	}
	t.Logf("lost install done: the next boot (%v) kept all %d MiB of the disk (sha256 %s before and after, the customer's file in place); the server has the node installed at generation 1 from that boot's report",
		kept, len(before.mib), before.all[:16])

	// 4. A reinstall request draws a new generation, and --power-cycle has
	// the node's BMC cycle it (ipmi_sim, whose power runs the guest): it
	// comes back, installs over the disk (the customer's file is gone) and
	// the record carries that generation.
	op := l.Peer(t, "192.0.2.3")
	t0 = time.Now()
	rb, err := exec.Command("ip", "netns", "exec", op.NS, cache.Ramboot(t), "node", "reinstall", "n2", "--power-cycle",
		"--state-file", state, "--nodes", nodes).CombinedOutput()
	rout := string(rb)
	t.Logf("node reinstall --power-cycle: %s", strings.TrimSpace(rout))
	gm := regexp.MustCompile(`install generation (\d+), after 1\)`).FindStringSubmatch(rout)
	if err != nil || gm == nil || !strings.Contains(rout, "n2: power cycle via ipmi "+lab.Addr+":623: on (") {
		t.Fatalf("reinstall --power-cycle: %v\n%s", err, rout)
	}
	if strings.Contains(rout, lab.BMCPassword) {
		t.Errorf("the BMC's password is in the output")
	}
	gen, _ := strconv.Atoi(gm[1])
	for _, re := range []string{
		`224: install http://192\.0\.2\.1:8080/images/` + name + ` onto /dev/vda`,
		`install: /dev/vda holds /dev/vda2:/var/lib/ramboot/install\.json \(generation 1, sha256=` + sum + `, \S+\), not this install: it carries generation 1, the install asks for ` + gm[1],
		`install: (?:flash: )?wrote ([\d.]+ [KMG]i?B) to /dev/vda in ([\dhm.]+s) \(([\d.]+ [KMG]i?B/s)\); sha256 verified`,
		`install: install record \(generation ` + gm[1] + `\) on /dev/vda2:/var/lib/ramboot/install\.json`,
		`install done: /dev/vda sha256=` + sum + ` gen=` + gm[1] + `\r?\n`,
		`install: rebooting into the installed system`,
	} {
		lab.WaitFile(t, console, re, 1, 600*time.Second)
	}
	// -no-reboot: the node's reboot ends QEMU; the disk is then quiet.
	lab.WaitGuestGone(t, bmcDir, 60*time.Second)
	if out, _ := os.ReadFile(console); strings.Contains(string(out), "Kernel panic") {
		t.Errorf("the guest panicked:\n%s", qemu.TailLines(string(out), 30))
	}
	t.Logf("reinstall --power-cycle through the BMC, installed at generation %d: %v", gen, time.Since(t0).Round(time.Second))
	if out, err := exec.Command("mtype", "-i", disk+"@@1M", "::/customer-data.txt").CombinedOutput(); err == nil {
		t.Errorf("the customer's file is still there after the reinstall: %s", out)
	}
	if rec := stateRecord(t, state, mac); rec.State != "installed" || rec.Generation != gen || rec.ReinstallRequested {
		t.Errorf("after the reinstall the state file has %+v, want installed at generation %d", rec, gen)
	}
	// What the guest's init reported of its hardware: its disk (2 GiB, as
	// made) and its memory (1536 MiB given, less what the kernel keeps).
	show := nodeCmd("show", "n2", "--json")
	var facts struct {
		Facts struct {
			MemoryBytes int64 `json:"memory_bytes"`
			Disks       []struct {
				Name  string `json:"name"`
				Bytes int64  `json:"bytes"`
			} `json:"disks"`
		} `json:"facts"`
	}
	if err := json.Unmarshal([]byte(show), &facts); err != nil {
		t.Fatalf("node show n2 --json: %v\n%s", err, show)
	}
	f := facts.Facts
	if f.MemoryBytes < 1200<<20 || f.MemoryBytes > 1536<<20 || len(f.Disks) != 1 || f.Disks[0].Name != "vda" || f.Disks[0].Bytes != 2<<30 {
		t.Errorf("node show n2: memory %d bytes, disks %+v; want 1200 to 1536 MiB and vda of %d bytes\n%s", f.MemoryBytes, f.Disks, int64(2<<30), show)
	}
	t.Logf("node show n2: memory %d MiB, disk %s %d bytes", f.MemoryBytes>>20, f.Disks[0].Name, f.Disks[0].Bytes)
	// The status page has n2's install state and its power action.
	page, err := lab.Get(l.NS, "http://"+lab.Addr+":8080/status")
	if err != nil || !strings.Contains(page, fmt.Sprintf(">installed (gen %d)</td>", gen)) || !strings.Contains(page, "n2: power cycle via ipmi") {
		t.Errorf("the status page lacks n2's install state (installed, gen %d) or its power cycle: %v", gen, err)
	}
}

// nodeRecord is what the e2e tests read of a state file's record.
type nodeRecord struct {
	State              string `json:"state"`
	Generation         int    `json:"generation"`
	Detail             string `json:"detail"`
	ReinstallRequested bool   `json:"reinstall_requested"`
}

// stateRecord reads mac's record from serve's state file.
func stateRecord(t testing.TB, path, mac string) nodeRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Nodes map[string]nodeRecord `json:"nodes"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file %s: %v", path, err)
	}
	return st.Nodes[mac]
}

// lostReport puts mac's record in serve's state file back to installing,
// as it was before its install done, the way the server and `ramboot
// node` write the file: a new file renamed over it.
func lostReport(t testing.TB, path, mac string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]map[string]map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	rec := st["nodes"][mac]
	if rec == nil {
		t.Fatalf("no record of %s in %s", mac, b)
	}
	rec["state"] = "installing"
	rec["detail"] = "started (install done lost)"
	out, _ := json.MarshalIndent(st, "", "  ")
	tmp := path + ".e2e"
	if err := os.WriteFile(tmp, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// diskSum is a disk image's SHA-256, whole and by MiB.
type diskSum struct {
	all string
	mib [][32]byte
}

func diskSums(t testing.TB, path string) diskSum {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d diskSum
	whole := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			whole.Write(buf[:n])
			d.mib = append(d.mib, sha256.Sum256(buf[:n]))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	d.all = hex.EncodeToString(whole.Sum(nil))
	return d
}

// differ lists the MiB that differ between two sums of a disk.
func (d diskSum) differ(e diskSum) []int {
	var out []int
	for i := range max(len(d.mib), len(e.mib)) {
		if i >= len(d.mib) || i >= len(e.mib) || d.mib[i] != e.mib[i] {
			out = append(out, i)
		}
	}
	return out
}
