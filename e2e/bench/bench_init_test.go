package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/builder"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
	"github.com/ramboot/ramboot/initramfs"
	"github.com/ramboot/ramboot/tree"
)

// consoleClock records when (host time) each console line arrived.
type stamped struct {
	at   time.Time
	line string
}

func runConsole(b *testing.B, args []string, until *regexp.Regexp, timeout time.Duration) []stamped {
	b.Helper()
	cmd := exec.Command(qemuB(b), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan stamped, 1024)
	go func() {
		defer close(lines)
		var cur []byte
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			now := time.Now()
			for _, c := range buf[:n] {
				if c == '\n' {
					lines <- stamped{now, strings.TrimRight(string(cur), "\r")}
					cur = cur[:0]
				} else {
					cur = append(cur, c)
				}
			}
			if err != nil {
				return
			}
		}
	}()
	var got []stamped
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				b.Fatalf("QEMU exited; console:\n%s", joinLines(got))
			}
			got = append(got, l)
			if until.MatchString(l.line) {
				return got
			}
		case <-deadline:
			b.Fatalf("no %q within %v; console:\n%s", until, timeout, joinLines(got))
		}
	}
}

func joinLines(ls []stamped) string {
	var s []string
	for _, l := range ls {
		s = append(s, l.line)
	}
	return strings.Join(s, "\n")
}

func qemuB(b *testing.B) string {
	p, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		b.Fatal("qemu-system-aarch64 not found: `make bench` installs it")
	}
	return p
}

func find(ls []stamped, re string) (stamped, []string, bool) {
	rx := regexp.MustCompile(re)
	for _, l := range ls {
		if m := rx.FindStringSubmatch(l.line); m != nil {
			return l, m, true
		}
	}
	return stamped{}, nil, false
}

var stageRE = regexp.MustCompile(`^ramboot \[\s*([0-9]+\.[0-9]+)\]`)

func guestTime(l stamped) float64 {
	if m := stageRE.FindStringSubmatch(l.line); m != nil {
		f, _ := strconv.ParseFloat(m[1], 64)
		return f
	}
	if m := regexp.MustCompile(`^\[\s*([0-9]+\.[0-9]+)\]`).FindStringSubmatch(l.line); m != nil {
		f, _ := strconv.ParseFloat(m[1], 64)
		return f
	}
	return -1
}

// benchModuleTree is lib/modules/<release> of the kernel m was built
// with, in the build cache: the extract directory of the kernel package
// the manifest names (extract/<first 32 hex of its SHA-256>), else any
// extracted tree of exactly that release.
func benchModuleTree(b *testing.B, m tree.Manifest) string {
	b.Helper()
	rel := m.Kernel.Release
	if rel == "" {
		b.Fatal("the virt image's manifest names no kernel release")
	}
	cache, err := builder.DefaultCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	var roots []string
	for _, p := range m.Packages {
		if p.Name == m.Kernel.Package && len(p.SHA256) >= 32 {
			roots = append(roots, filepath.Join(cache, "extract", p.SHA256[:32]))
		}
	}
	others, _ := filepath.Glob(filepath.Join(cache, "extract", "*"))
	roots = append(roots, others...)
	for _, root := range roots {
		for _, d := range []string{filepath.Join(root, "usr", "lib", "modules", rel), filepath.Join(root, "lib", "modules", rel)} {
			if _, err := os.Stat(filepath.Join(d, "kernel", "drivers", "net", "virtio_net.ko.xz")); err == nil {
				return d
			}
		}
	}
	b.Fatalf("no extracted kernel %s (virtio_net.ko.xz) in %s: the virt build should have left it there", rel, filepath.Join(cache, "extract"))
	return ""
}

// BenchmarkInit boots the virt image with QEMU's user-mode network (its
// DHCP server answers inside QEMU) and measures, from the console:
//   - ramboot's init: kernel "Run /init" -> option 224 acted on, and the
//     init's own work (that minus waiting for carrier and DHCP answers),
//     from the init's stage timestamps (guest clock);
//   - u-root's stock init running u-root's dhclient in the same VM, from
//     "Run /init" to dhclient's "Configured eth0" (host clock for both,
//     so the two totals compare).
func BenchmarkInit(b *testing.B) {
	dir, m := cache.Image(b, "virt")
	qargs := func(img, initrd, extra string) []string {
		_, args := qemu.Options{Board: "virt", Netdev: "user,id=n0", MAC: lab.GuestMAC,
			Kernel: img, Initrd: initrd, Append: extra}.Command(b)
		return args
	}

	// u-root's own image: the same commands, u-root's init, dhclient as
	// uinit after loading virtio_net (Debian has it as a module).
	tmp := b.TempDir()
	mk := filepath.Join(tmp, "mkuimage")
	if o, err := exec.Command("go", "build", "-o", mk, "github.com/u-root/mkuimage/cmd/mkuimage").CombinedOutput(); err != nil {
		b.Fatalf("building mkuimage: %v\n%s", err, o)
	}
	modDir := filepath.Join(tmp, "mods")
	// The modules of the very kernel both sides boot: the cache's
	// extracted package of the virt image's kernel. (The cache may hold
	// several boards' kernels, other architectures and releases among
	// them; any other kernel's modules fail with "exec format error".)
	rel := benchModuleTree(b, m)
	os.MkdirAll(modDir, 0o755)
	var files []string
	script := "#!/bin/gosh\n"
	for _, m := range []string{"net/core/failover.ko.xz", "drivers/net/net_failover.ko.xz", "drivers/net/virtio_net.ko.xz"} {
		src := filepath.Join(rel, "kernel", m)
		base := strings.TrimSuffix(filepath.Base(m), ".xz")
		if o, err := exec.Command("sh", "-c", "xz -dc "+src+" > "+filepath.Join(modDir, base)).CombinedOutput(); err != nil {
			b.Fatalf("xz: %v %s", err, o)
		}
		files = append(files, "-files", filepath.Join(modDir, base)+":lib/modules/"+base)
		script += "insmod /lib/modules/" + base + "\n"
	}
	script += "dhclient -ipv6=false eth0\n"
	os.WriteFile(filepath.Join(tmp, "net.sh"), []byte(script), 0o755)
	files = append(files, "-files", filepath.Join(tmp, "net.sh")+":bin/net.sh")
	cpio := filepath.Join(tmp, "uroot.cpio")
	args := append([]string{"-o", cpio, "-tags", "goshsmall", "-defaultsh", "gosh", "-initcmd", "init",
		"-uinitcmd", "gosh /bin/net.sh"}, files...)
	args = append(args, "github.com/u-root/u-root/cmds/core/init")
	args = append(args, initramfs.Commands...)
	cmd := exec.Command(mk, args...)
	cmd.Dir = cache.SrcDir()
	cmd.Env = append(os.Environ(), "GOARCH=arm64", "GOOS=linux", "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("mkuimage: %v\n%s", err, o)
	}

	for i := 0; i < b.N; i++ {
		ours := runConsole(b, qargs(filepath.Join(dir, "Image"), filepath.Join(dir, "rootfs.cpio.gz"), ""),
			regexp.MustCompile(`ramboot \[.*\] 224: `), 3*time.Minute)
		runInit, _, ok1 := find(ours, `Run /init as init process`)
		acted, _, ok2 := find(ours, `ramboot \[.*\] 224: `)
		_, cm, ok3 := find(ours, `carrier after ([0-9.]+)(ms|µs|s)`)
		disc, _, ok4 := find(ours, `DHCP DISCOVER`)
		offer, _, ok5 := find(ours, `: offer of `)
		req, _, ok6 := find(ours, `DHCP REQUEST`)
		lease, _, ok7 := find(ours, `: lease `)
		if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
			b.Fatalf("missing stage lines; console:\n%s", joinLines(ours))
		}
		cw, _ := strconv.ParseFloat(cm[1], 64)
		switch cm[2] {
		case "ms":
			cw /= 1000
		case "µs":
			cw /= 1e6
		}
		// Waiting for DHCP: DISCOVER to the first offer, the offer window
		// (proxy offers may follow) and REQUEST to the lease.
		dhcpWait := (guestTime(offer) - guestTime(disc)) + (guestTime(req) - guestTime(offer)) + (guestTime(lease) - guestTime(req))
		total := guestTime(acted) - guestTime(runInit)
		own := total - cw - dhcpWait
		oursHost := acted.at.Sub(runInit.at)
		started, _, _ := find(ours, `ramboot \[.*\] init: started`)
		goStart := guestTime(started) - guestTime(runInit)
		for _, l := range ours {
			if strings.HasPrefix(l.line, "ramboot [") {
				b.Log(l.line)
			}
		}

		uroot := runConsole(b, qargs(filepath.Join(dir, "Image"), cpio, ""),
			regexp.MustCompile(`Configured eth0 with|Could not configure`), 3*time.Minute)
		uRun, _, ok1 := find(uroot, `Run /init as init process`)
		uDone, um, ok2 := find(uroot, `(Configured eth0 with|Could not configure).*`)
		if !ok1 || !ok2 || strings.HasPrefix(um[1], "Could not") {
			b.Fatalf("u-root's init did not configure eth0; console:\n%s", joinLines(uroot))
		}
		urootHost := uDone.at.Sub(uRun.at)

		b.ReportMetric(total*1000, "ramboot-init-to-224-ms")
		b.ReportMetric(own*1000, "ramboot-own-work-ms")
		b.ReportMetric(float64(oursHost.Milliseconds()), "ramboot-host-ms")
		b.ReportMetric(float64(urootHost.Milliseconds()), "uroot-host-ms")
		b.ReportMetric(float64(oursHost)/float64(urootHost), "ramboot/uroot")
		fmt.Printf(`
init in QEMU virt (TCG), user-mode network
  ramboot init: Run /init -> 224 acted on   %6.0f ms (guest clock)   %6d ms (host clock)
    of which waiting: carrier %.0f ms, DHCP answers %.0f ms
    the init's own work                      %6.0f ms   (goal < 300 ms)
      of which Go runtime and package init (Run /init -> first line) %.0f ms
  u-root init + dhclient: Run /init -> eth0 configured          %6d ms (host clock)
  ratio ramboot/u-root (host clock)          %.2f
`, total*1000, oursHost.Milliseconds(), cw*1000, dhcpWait*1000, own*1000, goStart*1000, urootHost.Milliseconds(), float64(oursHost)/float64(urootHost))
	}
}

var _ = context.Background
