package install

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
)

// BenchmarkInstall measures the datacenter lifecycle on the virt machine,
// each number against its peer in the same run and the same QEMU:
//   - install throughput: `flash` (what option 224 install: runs) of the
//     zstd image over HTTP onto the virtio disk, against `dd` of the same
//     image, raw, from a second virtio disk onto the same disk (no network,
//     no decompression: the bound an install can approach);
//   - local boot: option 224 "local" to the installed system's login
//     prompt, against a direct boot of the installed kernel and initramfs
//     (QEMU's -kernel, standing in for the Pi firmware's cold boot of the
//     same disk) from power-on to the same prompt.
func BenchmarkInstall(b *testing.B) {
	lab.Skip(b)
	src, _ := cache.Image(b, "virt")
	name, sum, rawSize := installImage(b, "virt", src)
	dir := b.TempDir()
	raw := filepath.Join(dir, "image.raw")
	lab.Run(b, "zstd", "-q", "-d", "-f", filepath.Join(src, "images", name), "-o", raw)
	b.ReportMetric(float64(rawSize)/1e6, "image-raw-MB")

	l := lab.New(b)
	l.Dnsmasq(b, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--dhcp-host=52:54:00:12:34:56,192.0.2.131,bench-2")
	l.Serve(b, src, "--dhcp", "off")
	disk := newDisk(b, dir, 2<<30)
	o := l.Guest(src, "ramboot.224=shell")
	o.Memory = "1536"
	o.Extra = []string{"-drive", "if=none,id=d0,format=raw,file=" + disk, "-device", "virtio-blk-pci,drive=d0",
		"-drive", "if=none,id=d1,format=raw,readonly=on,file=" + raw, "-device", "virtio-blk-pci,drive=d1"}
	vm := qemu.Boot(b, o)
	vm.Expect(`shell: started on ttyAMA0`, 180*time.Second)
	vm.Expect(`network: eth0 52:54:00:12:34:56 192\.0\.2\.131`, 60*time.Second)
	timed := func(cmd, done string) float64 {
		vm.Send(cmd + " && echo " + done + "\n")
		t0 := time.Now()
		vm.Expect(`(?m)^`+done, 1200*time.Second)
		return time.Since(t0).Seconds()
	}
	ddSecs := timed("dd if=/dev/vdb of=/dev/vda bs=4194304 && sync", "DD-DONE")
	flashSecs := timed("flash --yes --disk-image --sha256 "+sum+" http://192.0.2.1:8080/images/"+name+" /dev/vda", "FLASH-DONE")
	b.ReportMetric(float64(rawSize)/1e6/ddSecs, "dd-MB/s")
	b.ReportMetric(float64(rawSize)/1e6/flashSecs, "install-MB/s")
	b.ReportMetric(ddSecs/flashSecs, "install/dd")
	vm.Stop()

	// The disk now holds the image as installed (flash wrote it, no edits).
	// Local boot through ramboot.
	t0 := time.Now()
	vm = bootWithDisk(b, l, src, disk, "ramboot.224=local")
	vm.Expect(`224: local`, 180*time.Second)
	t224 := time.Since(t0)
	vm.Expect(`(?m)^\S+ login:`, 600*time.Second)
	local := time.Since(t0)
	vm.Stop()
	// The peer: the installed kernel and initramfs, booted directly.
	boot := filepath.Join(dir, "boot")
	os.MkdirAll(boot, 0o755)
	lab.Run(b, "mcopy", "-i", disk+"@@1M", "::/vmlinuz", "::/initrd.img", "::/cmdline.txt", boot)
	cmdline, _ := os.ReadFile(filepath.Join(boot, "cmdline.txt"))
	t1 := time.Now()
	o = l.Guest(src, "")
	o.Memory = "1536"
	o.Kernel, o.Initrd = filepath.Join(boot, "vmlinuz"), filepath.Join(boot, "initrd.img")
	o.Cmdline = string(cmdline) // the installed system's own
	o.Extra = []string{"-drive", "if=none,id=d0,format=raw,file=" + disk, "-device", "virtio-blk-pci,drive=d0"}
	vm = qemu.Boot(b, o)
	vm.Expect(`(?m)^\S+ login:`, 600*time.Second)
	direct := time.Since(t1)
	b.ReportMetric((local - t224).Seconds(), "224-to-login-s")
	b.ReportMetric(local.Seconds(), "local-power-on-to-login-s")
	b.ReportMetric(direct.Seconds(), "direct-power-on-to-login-s")
	b.ReportMetric(local.Seconds()/direct.Seconds(), "local/direct")
	b.Logf("install %s (%s raw): flash %.1fs, dd %.1fs; local boot: 224 at %v, login at %v; direct boot login at %v",
		name, strconv.FormatInt(rawSize, 10), flashSecs, ddSecs, t224.Round(time.Second), local.Round(time.Second), direct.Round(time.Second))
}
