package bench

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
)

// BenchmarkRamRoot measures the RAM root on the virt machine, each number
// against its peer in the same run:
//   - option 224 to switch_root (download, hash, mount and checks together)
//     as throughput, against curl fetching the same file over the same
//     emulated link inside the same guest once it runs;
//   - the node's memory in use after boot against the image's unpacked size;
//   - power-on to multi-user (systemd-analyze's kernel + userspace: the
//     kernel part includes the init) from RAM and over NFS (nfs-ganesha,
//     the same root unpacked, read-only under a RAM overlay).
func BenchmarkRamRoot(b *testing.B) {
	lab.Skip(b)
	src, _ := cache.Image(b, "virt")
	r := cache.RootImage(b, "virt", "", "debian")
	b.ReportMetric(float64(r.Size)/1e6, "image-MB")

	boot := func(b *testing.B, l *lab.Lab, value, addr string) (*qemu.VM, string) {
		vm := l.Boot(b, src, "ramboot.224="+value)
		vm.Expect(`(?i)systemd .* running in system mode`, 600*time.Second)
		out := l.SSHUntil(b, addr, "systemctl is-system-running --wait >/dev/null; systemd-analyze time; systemd-analyze blame | head -5", 600*time.Second)
		return vm, out
	}
	startup := regexp.MustCompile(`Startup finished in ([\d.]+)s \(kernel\) \+ (?:([\d.]+)min )?([\d.]+)s \(userspace\)`)
	total := func(b *testing.B, out string) float64 {
		m := startup.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("no startup time in %q", out)
		}
		k, _ := strconv.ParseFloat(m[1], 64)
		min, _ := strconv.ParseFloat(m[2], 64)
		u, _ := strconv.ParseFloat(m[3], 64)
		return k + 60*min + u
	}
	stamp := regexp.MustCompile(`ramboot \[\s*(\d+\.\d+)\] `)
	at := func(b *testing.B, vm *qemu.VM, re string) float64 {
		for _, line := range strings.Split(vm.Output(), "\n") {
			if regexp.MustCompile(re).MatchString(line) {
				if m := stamp.FindStringSubmatch(line); m != nil {
					v, _ := strconv.ParseFloat(m[1], 64)
					return v
				}
			}
		}
		b.Fatalf("no console line %q", re)
		return 0
	}

	l := lab.New(b)
	l.Dnsmasq(b, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--dhcp-host=52:54:00:12:34:56,192.0.2.130,bench-1")
	l.Serve(b, src, "--dhcp", "off")
	url := "http://192.0.2.1:8080/images/debian.squashfs"
	vm, analyze := boot(b, l, url, "192.0.2.130")
	ram := total(b, analyze)
	toSwitch := at(b, vm, `switch_root: /newroot`) - at(b, vm, `224: chain `)
	initRate := float64(r.Size) / 1e6 / toSwitch
	// The peer: curl, in the same guest, over the same link, to /dev/null.
	out := l.SSHUntil(b, "192.0.2.130", "curl -s -o /dev/null -w '%{size_download} %{time_total}\\n' "+url+
		"; awk '/^MemTotal/{t=$2} /^MemAvailable/{a=$2} END{print (t-a)*1024}' /proc/meminfo; du -sxb /run/ramboot/lower | cut -f1", 300*time.Second)
	f := strings.Fields(out)
	if len(f) < 4 {
		b.Fatalf("guest's curl, memory and du: %q", out)
	}
	n, _ := strconv.ParseFloat(f[0], 64)
	secs, _ := strconv.ParseFloat(f[1], 64)
	used, _ := strconv.ParseFloat(f[2], 64)
	unpacked, _ := strconv.ParseFloat(f[3], 64)
	if n != float64(r.Size) || secs <= 0 {
		b.Fatalf("guest's curl got %v bytes in %v s, want %d", n, secs, r.Size)
	}
	curlRate := n / 1e6 / secs
	b.ReportMetric(toSwitch, "224-to-switch_root-s")
	b.ReportMetric(initRate, "init-MB/s")
	b.ReportMetric(curlRate, "curl-MB/s")
	b.ReportMetric(initRate/curlRate, "init/curl")
	b.ReportMetric(used/1e6, "mem-used-MB")
	b.ReportMetric(unpacked/1e6, "unpacked-MB")
	b.ReportMetric(ram, "ram-boot-s")
	b.Logf("RAM root: image %.1f MB; option 224 to switch_root %.2f s (%.1f MB/s; curl in the guest %.1f MB/s: %.2f); memory in use %.1f MB, unpacked root %.1f MB; boot to multi-user %.1f s\n%s",
		float64(r.Size)/1e6, toSwitch, initRate, curlRate, initRate/curlRate, used/1e6, unpacked/1e6, ram, analyze)
	vm.Stop()

	// The same root over NFS, read-only under a RAM overlay.
	root := filepath.Join(b.TempDir(), "root")
	lab.Run(b, "unsquashfs", "-q", "-d", root, r.Image)
	l.Ganesha(b, lab.Export{Path: root, Pseudo: "/ro", RO: true})
	_, analyze = boot(b, l, "nfs://192.0.2.1/ro?vers=3&overlay", "192.0.2.130")
	nfs := total(b, analyze)
	b.ReportMetric(nfs, "nfs-boot-s")
	b.ReportMetric(ram/nfs, "ram/nfs")
	b.Logf("NFS root: boot to multi-user %.1f s (RAM/NFS %.2f)\n%s", nfs, ram/nfs, analyze)
	fmt.Fprintf(cache.Log(b), "ram root %.1f s, nfs root %.1f s\n", ram, nfs)
}
