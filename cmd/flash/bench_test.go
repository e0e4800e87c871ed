//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFlash200MB writes a 200 MB zstd image to a file with flash and,
// in the same run, with `zstd -dc IMG | dd of=FILE bs=4M conv=fsync` (both
// fsync). Without the zstd CLI it uses a gzip image and `gzip -dc`.
// Metrics: flash-MB/s, shell-MB/s and flash/shell (>1: flash is faster);
// ns/op is the time of both together.
//
//	go test -run '^$' -bench Flash200MB -benchtime 3x ./cmd/flash/
func BenchmarkFlash200MB(b *testing.B) {
	dir := b.TempDir()
	img := makeImage(200_000_000, 2)
	raw := filepath.Join(dir, "img")
	if err := os.WriteFile(raw, img, 0o644); err != nil {
		b.Fatal(err)
	}
	tool, ext := "zstd", ".zst"
	if _, err := exec.LookPath("zstd"); err != nil {
		tool, ext = "gzip", ".gz"
	}
	src := raw + ext
	if out, err := exec.Command(tool, "-q", "-k", "-f", raw).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", tool, err, out)
	}
	os.Remove(raw)
	out := filepath.Join(dir, "disk")
	os.WriteFile(out, nil, 0o644)
	e := &env{stdin: bytes.NewReader(nil), procMounts: "/nonexistent", procSwaps: "/nonexistent",
		sysBlock: "/nonexistent", sysDev: "/nonexistent", stall: time.Minute}
	shell := tool + " -dc " + src + " | dd of=" + out + " bs=4M conv=fsync status=none"
	var stderr bytes.Buffer

	b.ResetTimer()
	var tFlash, tShell time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if code := e.run(context.Background(), []string{"--yes", src, out}, io.Discard, &stderr); code != 0 {
			b.Fatalf("flash: exit %d: %s", code, stderr.String())
		}
		tFlash += time.Since(t0)

		b.StopTimer()
		if i == 0 {
			got, _ := os.ReadFile(out)
			if sha256.Sum256(got) != sha256.Sum256(img) {
				b.Fatal("flash wrote something other than the image")
			}
		}
		b.StartTimer()

		t0 = time.Now()
		if o, err := exec.Command("sh", "-c", shell).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", shell, err, o)
		}
		tShell += time.Since(t0)
	}
	mb := float64(len(img)) * float64(b.N) / 1e6
	b.ReportMetric(mb/tFlash.Seconds(), "flash-MB/s")
	b.ReportMetric(mb/tShell.Seconds(), tool+"|dd-MB/s")
	b.ReportMetric(tShell.Seconds()/tFlash.Seconds(), "flash/shell")
	b.Logf("%s: %s -> %s; shell: %s", tool, humanBytes(int64(len(img))), src, shell)
}
