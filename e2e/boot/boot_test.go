package boot

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/ramboot/ramboot/builder"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
	"github.com/ramboot/ramboot/tree"
)

func TestBootVirt(t *testing.T) {
	dir, m := cache.Image(t, "virt")
	vm := qemu.Boot(t, qemu.Options{Board: "virt",
		Kernel: filepath.Join(dir, "Image"), Initrd: filepath.Join(dir, "rootfs.cpio.gz")})
	vm.Expect(`ramboot \[\s*[0-9.]+\] mounts: /proc /sys /dev /run /tmp`, 90*time.Second)
	vm.Expect(`modules: [1-9] network driver modules loaded`, 60*time.Second)
	vm.Expect(`ramboot e2e on board virt .*kernel `+regexp.QuoteMeta(m.Kernel.Release), 30*time.Second)
	vm.ShellRoundTrip()
	vm.Expect(regexp.QuoteMeta(m.Kernel.Release), 10*time.Second)
	// The rest of the modules load while DHCP runs; then everything the
	// board asked for is live.
	deadline := time.Now().Add(60 * time.Second)
	for !regexp.MustCompile(`modules: [1-9][0-9]* more loaded \([1-9][0-9] in all\)`).MatchString(vm.Output()) {
		if time.Now().After(deadline) {
			t.Fatal("the modules after the network drivers did not load within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, mod := range []string{"virtio_net", "nfsv4", "overlay"} {
		vm.Send("grep ^" + mod + " /proc/modules\n")
		vm.Expect(mod+` [0-9]+ [0-9]+ .*Live`, 10*time.Second) // a /proc/modules line, not the echo
	}
}

// raspi4bDTB disables the DTB nodes QEMU's raspi4b lacks, which crash
// Debian's kernel while probing (see notes on the test lab).
func raspi4bDTB(t testing.TB, src string) string {
	t.Helper()
	fdtput, err := exec.LookPath("fdtput")
	if err != nil {
		t.Fatalf("fdtput not found: run `make test` (it installs device-tree-compiler)")
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{
		"/soc/interrupt-controller@7ef00100", "/soc/hdmi@7ef00700", "/soc/i2c@7ef04500",
		"/soc/hdmi@7ef05700", "/soc/i2c@7ef09500", "/soc/clock@7ef00000",
		"/soc/pixelvalve@7ec12000", "/soc/vec@7ec13000", "/scb/gpu@7ec00000",
		// QEMU's serial0 is the PL011 that a real Pi 4 wires to Bluetooth;
		// with the Bluetooth child enabled the kernel makes the port a
		// serdev, and the console gets no tty to type into.
		"/soc/serial@7e201000/bluetooth",
	} {
		if out, err := exec.Command(fdtput, "-t", "s", dst, n, "status", "disabled").CombinedOutput(); err != nil {
			t.Fatalf("fdtput %s: %v\n%s", n, err, out)
		}
	}
	return dst
}

// TestBootRaspi4b boots what a Pi 4 gets over HTTP: the kernel, DTB and
// initramfs are taken out of a signed boot.img (builder.MakeBootImage,
// the tree's files; read back with mtools' mcopy), and the DTB carries
// /chosen/bootloader/boot_img_sha256 as a bootloader with signed boot
// leaves it (2025-01-22 and later; 32 bytes, one of the two encodings the
// init takes): the init names that digest in its banner.
func TestBootRaspi4b(t *testing.T) {
	_, m := cache.Image(t, "rpi4")
	lab.Need(t, "mcopy", "mtools")
	lab.Need(t, "fdtput", "device-tree-compiler")
	mcopy, fdtput := "mcopy", "fdtput"
	signed, _, bi := lab.HTTPBootTree(t, "rpi4")
	img := filepath.Join(signed, tree.BootImgName)
	work := t.TempDir()
	for _, f := range []string{"Image", "bcm2711-rpi-4-b.dtb", "rootfs.cpio.gz"} {
		if out, err := exec.Command(mcopy, "-n", "-i", img, "::/"+f, filepath.Join(work, f)).CombinedOutput(); err != nil {
			t.Fatalf("mcopy ::/%s out of boot.img: %v\n%s", f, err, out)
		}
	}
	dtb := raspi4bDTB(t, filepath.Join(work, "bcm2711-rpi-4-b.dtb"))
	digest, err := hex.DecodeString(bi.Info.SHA256)
	if err != nil || len(digest) != 32 {
		t.Fatalf("boot.img's sha256 %q: %v", bi.Info.SHA256, err)
	}
	var bytesArg []string
	for _, b := range digest {
		bytesArg = append(bytesArg, fmt.Sprintf("%02x", b))
	}
	for _, args := range [][]string{
		{"-c", dtb, "/chosen/bootloader"},
		append([]string{"-t", "bx", dtb, "/chosen/bootloader", "boot_img_sha256"}, bytesArg...),
	} {
		if out, err := exec.Command(fdtput, args...).CombinedOutput(); err != nil {
			t.Fatalf("fdtput %v: %v\n%s", args, err, out)
		}
	}
	vm := qemu.Boot(t, qemu.Options{Board: "rpi4",
		Kernel: filepath.Join(work, "Image"), DTB: dtb, Initrd: filepath.Join(work, "rootfs.cpio.gz")})
	vm.Expect(`ramboot \[\s*[0-9.]+\] mounts: /proc /sys /dev /run /tmp`, 120*time.Second)
	vm.Expect(`ramboot e2e on board rpi4 \(Raspberry Pi 4 Model B[^)]*\), kernel `+regexp.QuoteMeta(m.Kernel.Release), 60*time.Second)
	vm.Expect(`facts: Raspberry Pi 4 Model B[^;]*; 4 cores \(arm,cortex-a72\); [0-9]+ MB; disks: [^;\r\n]*; NICs: [^;\r\n]*`, 10*time.Second)
	vm.Expect(`boot\.img: sha256 `+bi.Info.SHA256+`, verified by the bootloader`, 10*time.Second)
	vm.ShellRoundTrip()
}

// TestRaspi4bNoNetworkAndKexecEBUSY: QEMU's raspi4b has no GENET, so the
// init reports no network and gives the shell; and a kexec there fails the
// way it does on a stock Pi 4 (a spin-table boot, no PSCI), with the
// explanation in words. The kernel to kexec is laid into the initramfs by
// an overlay, and option 224 points at a script in it.
func TestRaspi4bNoNetworkAndKexecEBUSY(t *testing.T) {
	dir, m := cache.Image(t, "rpi4")
	overlay := t.TempDir()
	os.MkdirAll(filepath.Join(overlay, "boot"), 0o755)
	os.WriteFile(filepath.Join(overlay, "boot", "Image"), lab.Gunzip(t, filepath.Join(dir, "Image")), 0o644)
	os.WriteFile(filepath.Join(overlay, "boot", "kexec.ipxe"), []byte("#!ipxe\nkernel Image console=ttyAMA0\nboot\n"), 0o644)
	out := t.TempDir()
	b := &builder.Build{Options: builder.Options{Board: "rpi4", Out: out, SrcDir: cache.SrcDir(), Version: "e2e", Overlays: []string{overlay}}}
	if err := b.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	dtb := raspi4bDTB(t, filepath.Join(dir, "bcm2711-rpi-4-b.dtb"))
	run := func(extra string) *qemu.VM {
		return qemu.Boot(t, qemu.Options{Board: "rpi4",
			Kernel: filepath.Join(out, "Image"), DTB: dtb, Initrd: filepath.Join(out, "rootfs.cpio.gz"), Append: extra})
	}
	vm := run("")
	vm.Expect(`network: no wired network interface found`, 120*time.Second)
	vm.Expect(`224: no network \(.*\): provisioning shell`, 60*time.Second)
	vm.ShellRoundTrip()

	vm = run("ramboot.224=file:///boot/kexec.ipxe")
	vm.Expect(`ramboot e2e on board rpi4|kexec: `, 120*time.Second)
	vm.Expect(`224: chain file:///boot/kexec.ipxe failed: .*CPUs offline.*PSCI.*armstub=bl31.bin`, 120*time.Second)
	vm.ShellRoundTrip()
	_ = m
}
