package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/builder"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/initramfs"
)

// BenchmarkBuild measures, in one run (make bench):
//   - ramboot's cold build of rpi4 (empty Go build cache and busybox cache;
//     the Debian downloads come from the cache, they are the network's time),
//   - a warm rebuild after an overlay change,
//   - rootfs.cpio.gz size and the bytes a Pi fetches over TFTP,
//   - u-root's own image tool (mkuimage) building the same command set for
//     arm64 from an empty Go build cache, and its gzip'd size,
//
// and reports ratios against the peer.
func BenchmarkBuild(b *testing.B) {
	src := cache.SrcDir()
	cache, err := builder.DefaultCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	// Downloads first, so that neither side pays for the network.
	warmup := &builder.Build{Options: builder.Options{Board: "rpi4", Out: b.TempDir(), SrcDir: src}}
	if err := warmup.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		tmp := b.TempDir()
		b.Setenv("GOCACHE", filepath.Join(tmp, "gocache-ramboot"))
		fresh := filepath.Join(tmp, "cache")
		os.MkdirAll(fresh, 0o755)
		if err := os.Symlink(filepath.Join(cache, "apt"), filepath.Join(fresh, "apt")); err != nil {
			b.Fatal(err)
		}
		overlay := filepath.Join(tmp, "overlay")
		os.MkdirAll(filepath.Join(overlay, "etc"), 0o755)
		os.WriteFile(filepath.Join(overlay, "etc", "motd"), []byte("rack 1\n"), 0o644)
		out := filepath.Join(tmp, "out")
		opts := builder.Options{Board: "rpi4", Out: out, SrcDir: src, CacheDir: fresh, Overlays: []string{overlay}, Version: "bench"}

		t0 := time.Now()
		cold := &builder.Build{Options: opts}
		if err := cold.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		coldD := time.Since(t0)

		os.WriteFile(filepath.Join(overlay, "etc", "motd"), []byte("rack 2\n"), 0o644)
		t0 = time.Now()
		warm := &builder.Build{Options: opts}
		if err := warm.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		warmD := time.Since(t0)
		if lab.FileSHA(warm.Manifest.Files, "rootfs.cpio.gz") == lab.FileSHA(cold.Manifest.Files, "rootfs.cpio.gz") {
			b.Fatal("the overlay change did not reach rootfs.cpio.gz")
		}
		rootfs := lab.FileSize(b, filepath.Join(out, "rootfs.cpio.gz"))

		// The peer: u-root's mkuimage, same commands, u-root's init.
		b.Setenv("GOCACHE", filepath.Join(tmp, "gocache-uroot"))
		mk := filepath.Join(tmp, "mkuimage")
		if o, err := exec.Command("go", "build", "-o", mk, "github.com/u-root/mkuimage/cmd/mkuimage").CombinedOutput(); err != nil {
			b.Fatalf("building mkuimage: %v\n%s", err, o)
		}
		cpioOut := filepath.Join(tmp, "uroot.cpio")
		args := []string{"-o", cpioOut, "-tags", "goshsmall", "-defaultsh", "gosh", "-initcmd", "init", "github.com/u-root/u-root/cmds/core/init"}
		args = append(args, initramfs.Commands...)
		cmd := exec.Command(mk, args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOARCH=arm64", "GOOS=linux", "CGO_ENABLED=0")
		t0 = time.Now()
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("mkuimage: %v\n%s", err, o)
		}
		gz := exec.Command("gzip", "-9", "-n", "-k", cpioOut)
		if o, err := gz.CombinedOutput(); err != nil {
			b.Fatalf("gzip: %v\n%s", err, o)
		}
		urootD := time.Since(t0)
		urootSize := lab.FileSize(b, cpioOut+".gz")

		b.ReportMetric(coldD.Seconds(), "cold-s")
		b.ReportMetric(warmD.Seconds(), "warm-s")
		b.ReportMetric(float64(rootfs)/1e6, "rootfs-MB")
		b.ReportMetric(float64(cold.Manifest.TFTPPayload)/1e6, "tftp-MB")
		b.ReportMetric(urootD.Seconds(), "uroot-cold-s")
		b.ReportMetric(float64(urootSize)/1e6, "uroot-MB")
		b.ReportMetric(coldD.Seconds()/urootD.Seconds(), "cold/uroot")
		b.ReportMetric(float64(rootfs)/float64(urootSize), "size/uroot")
		report := fmt.Sprintf(`
ramboot rpi4: u-root's %d commands and an init (ramboot's adds its flash command)
  cold build (empty Go cache)      %6.1f s    u-root mkuimage + gzip -9: %6.1f s   ratio %.2f
  warm rebuild, overlay changed    %6.1f s    (goal < 5 s)
  rootfs.cpio.gz (with %d modules) %6.2f MB   u-root cpio.gz (no modules): %5.2f MB ratio %.2f  (goal < 8 MB)
  TFTP payload (%s)
                                   %6.2f MB   (goal < 25 MB; ~%.1f s at the Pi's 5 MB/s)
`, len(initramfs.Commands), coldD.Seconds(), urootD.Seconds(), coldD.Seconds()/urootD.Seconds(),
			warmD.Seconds(), len(cold.Manifest.Modules), float64(rootfs)/1e6, float64(urootSize)/1e6, float64(rootfs)/float64(urootSize),
			strings.Join(cold.Manifest.TFTPFetched, " "), float64(cold.Manifest.TFTPPayload)/1e6, float64(cold.Manifest.TFTPPayload)/5e6)
		fmt.Fprint(os.Stdout, report)
	}
}
