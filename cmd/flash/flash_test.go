//go:build linux

package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// testImage is like a disk image: runs of zeros, text and random bytes.
// Its size is not a multiple of the 4 MiB chunk and spans several chunks.
func makeImage(size int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	img := make([]byte, 0, size)
	words := []string{"ramboot ", "kernel ", "initramfs ", "/usr/lib/", "0123456789", "\x00\x01\x02\x03"}
	for len(img) < size {
		n := 1 + rng.Intn(256<<10)
		if n > size-len(img) {
			n = size - len(img)
		}
		switch rng.Intn(3) {
		case 0:
			img = append(img, make([]byte, n)...)
		case 1:
			for end := len(img) + n; len(img) < end; {
				w := words[rng.Intn(len(words))]
				if len(w) > end-len(img) {
					w = w[:end-len(img)]
				}
				img = append(img, w...)
			}
		case 2:
			chunk := make([]byte, n)
			rng.Read(chunk)
			img = append(img, chunk...)
		}
	}
	return img
}

func compress(t testing.TB, f format, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	var err error
	switch f {
	case formatRaw:
		return data
	case formatGzip:
		w = gzip.NewWriter(&b)
	case formatXz:
		w, err = xz.NewWriter(&b)
	case formatZstd:
		w, err = zstd.NewWriter(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var (
	fixturesOnce sync.Once
	fixtureImg   []byte
	fixtures     map[format][]byte
)

// getFixtures compresses the test image once for all tests.
func getFixtures(t *testing.T) ([]byte, map[format][]byte) {
	fixturesOnce.Do(func() {
		fixtureImg = makeImage(9<<20+12345, 1)
		fixtures = map[format][]byte{}
		for _, f := range []format{formatRaw, formatGzip, formatXz, formatZstd} {
			fixtures[f] = compress(t, f, fixtureImg)
		}
	})
	return fixtureImg, fixtures
}

type fakeSys struct {
	env    *env
	dir    string
	stdout bytes.Buffer
	stderr bytes.Buffer
}

func newFake(t *testing.T) *fakeSys {
	dir := t.TempDir()
	mounts := filepath.Join(dir, "mounts")
	os.WriteFile(mounts, []byte("proc /proc proc rw 0 0\n"), 0o644)
	return &fakeSys{
		dir: dir,
		env: &env{
			stdin:      strings.NewReader(""),
			procMounts: mounts,
			procSwaps:  filepath.Join(dir, "swaps"),
			sysBlock:   filepath.Join(dir, "sys-class-block"),
			sysDev:     filepath.Join(dir, "sys-dev-block"),
			stall:      5 * time.Second,
		},
	}
}

func (f *fakeSys) run(args ...string) int {
	f.stdout.Reset()
	f.stderr.Reset()
	return f.env.run(context.Background(), args, &f.stdout, &f.stderr)
}

// newTarget makes the "device": an existing file with old content.
func (f *fakeSys) newTarget(t *testing.T) string {
	p := filepath.Join(f.dir, "disk")
	if err := os.WriteFile(p, bytes.Repeat([]byte("OLD!"), 5<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func checkTarget(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("target differs from the image: %d bytes, want %d; first difference at byte %d", len(got), len(want), i)
	}
}

// server serves the fixtures at /img.FORMAT, with special behaviours.
func newServer(t *testing.T, files map[string][]byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		switch {
		case strings.HasPrefix(name, "truncated/"):
			data := files[strings.TrimPrefix(name, "truncated/")]
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:len(data)*2/3]) // then the handler returns: the server closes the connection
			return
		case strings.HasPrefix(name, "stall/"):
			data := files[strings.TrimPrefix(name, "stall/")]
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:100<<10])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		case strings.HasPrefix(name, "chunked/"):
			// no Content-Length: size unknown
			data := files[strings.TrimPrefix(name, "chunked/")]
			for len(data) > 0 {
				n := min(len(data), 1<<20)
				w.Write(data[:n])
				w.(http.Flusher).Flush()
				data = data[n:]
			}
			return
		}
		data, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server not on 127.0.0.1: %s", srv.URL)
	}
	return srv
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFlashFormats(t *testing.T) {
	img, fx := getFixtures(t)
	files := map[string][]byte{}
	for f, data := range fx {
		files["img."+string(f)] = data
	}
	srv := newServer(t, files)
	for _, f := range []format{formatRaw, formatGzip, formatXz, formatZstd} {
		for _, via := range []string{"http", "chunked-http", "file"} {
			t.Run(string(f)+"/"+via, func(t *testing.T) {
				fs := newFake(t)
				dev := fs.newTarget(t)
				var src string
				switch via {
				case "http":
					src = srv.URL + "/img." + string(f)
				case "chunked-http":
					src = srv.URL + "/chunked/img." + string(f)
				case "file":
					src = filepath.Join(fs.dir, "image.bin") // a name that says nothing
					os.WriteFile(src, fx[f], 0o644)
				}
				if code := fs.run("--sha256", sumOf(fx[f]), src, dev); code != 0 {
					t.Fatalf("exit %d, stderr:\n%s", code, fs.stderr.String())
				}
				checkTarget(t, dev, img)
				wantKind := "raw image"
				if f != formatRaw {
					wantKind = string(f) + "-compressed image"
				}
				if !strings.Contains(fs.stderr.String(), wantKind) {
					t.Errorf("stderr does not say %q:\n%s", wantKind, fs.stderr.String())
				}
				if !strings.Contains(fs.stdout.String(), "sha256 verified") {
					t.Errorf("stdout does not say the checksum was verified: %q", fs.stdout.String())
				}
			})
		}
	}
}

func TestSHA256(t *testing.T) {
	img, fx := getFixtures(t)
	data := fx[formatXz]
	good := sumOf(data)
	bad := sumOf(img) // the checksum of the decompressed image is the classic mistake
	sums := fmt.Sprintf("%s  other.img.xz\n%s *img.xz\n", sumOf([]byte("x")), good)
	srv := newServer(t, map[string][]byte{
		"img.xz":        data,
		"SHA256SUMS":    []byte(sums),
		"BSDSUMS":       []byte("SHA256 (img.xz) = " + good + "\n"),
		"img.xz.sha256": []byte(good + "\n"),
		"OTHERSUMS":     []byte(sumOf([]byte("x")) + "  other.img.xz\n"),
	})
	tests := []struct {
		name    string
		sha     string
		code    int
		want    []string
		written bool
	}{
		{"hex", good, 0, []string{"sha256 verified"}, true},
		{"upper hex", strings.ToUpper(good), 0, []string{"sha256 verified"}, true},
		{"SHA256SUMS URL", srv.URL + "/SHA256SUMS", 0, []string{"sha256 verified"}, true},
		{"BSD style", srv.URL + "/BSDSUMS", 0, []string{"sha256 verified"}, true},
		{"single digest file", srv.URL + "/img.xz.sha256", 0, []string{"sha256 verified"}, true},
		{"mismatch", bad, 1, []string{"SHA-256 MISMATCH", bad, good, "UNVERIFIED"}, true},
		{"no line for image", srv.URL + "/OTHERSUMS", 1, []string{"no line for img.xz", "other.img.xz"}, false},
		{"sums 404", srv.URL + "/NOSUMS", 1, []string{"404"}, false},
		{"garbage", "abc", 1, []string{"neither 64 hex digits nor a SHA256SUMS file"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFake(t)
			dev := fs.newTarget(t)
			code := fs.run("--sha256", tc.sha, srv.URL+"/img.xz", dev)
			out := fs.stdout.String() + fs.stderr.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.written {
				checkTarget(t, dev, img)
			} else if got, _ := os.ReadFile(dev); !bytes.HasPrefix(got, []byte("OLD!")) {
				t.Errorf("the target was written although the checksum could not be resolved")
			}
		})
	}
}

func TestErrors(t *testing.T) {
	_, fx := getFixtures(t)
	files := map[string][]byte{
		"index.html": []byte("<!DOCTYPE html>\n<html><body>Download here</body></html>"),
		"empty.img":  {},
		"img.zip":    []byte("PK\x03\x04rest of a zip"),
	}
	for f, data := range fx {
		files["img."+string(f)] = data
	}
	srv := newServer(t, files)

	dir := t.TempDir()
	shortXz := filepath.Join(dir, "short.xz")
	os.WriteFile(shortXz, fx[formatXz][:len(fx[formatXz])/2], 0o644)
	corruptGz := filepath.Join(dir, "corrupt.gz")
	c := bytes.Clone(fx[formatGzip])
	for i := len(c) / 2; i < len(c)/2+64; i++ {
		c[i] ^= 0x55
	}
	os.WriteFile(corruptGz, c, 0o644)

	tests := []struct {
		name    string
		image   string
		device  string // "" = a good target
		want    []string
		touched bool // the target may have been written
	}{
		{"404", srv.URL + "/nope.img", "", []string{"404 Not Found", "check the URL"}, false},
		{"truncated raw", srv.URL + "/truncated/img.raw", "", []string{"download truncated: got", "holds a partial image"}, true},
		{"truncated gzip", srv.URL + "/truncated/img.gzip", "", []string{"download truncated: got"}, true},
		{"truncated zstd", srv.URL + "/truncated/img.zstd", "", []string{"download truncated: got"}, true},
		{"truncated xz", srv.URL + "/truncated/img.xz", "", []string{"download truncated: got"}, true},
		{"stalled", srv.URL + "/stall/img.raw", "", []string{"download stalled: no data for 300ms"}, true},
		{"short local xz", shortXz, "", []string{"corrupt or truncated xz data"}, true},
		{"corrupt gzip", corruptGz, "", []string{"corrupt or truncated gzip data"}, true},
		{"html page", srv.URL + "/index.html", "", []string{"HTML page"}, false},
		{"empty image", srv.URL + "/empty.img", "", []string{"empty"}, false},
		{"zip", srv.URL + "/img.zip", "", []string{"zip archive"}, false},
		{"missing file", filepath.Join(dir, "nope.img"), "", []string{"no such file"}, false},
		{"image is dir", dir, "", []string{"is a directory"}, false},
		{"ftp", "ftp://host/img", "", []string{"only http:// and https://"}, false},
		{"connection refused", "http://127.0.0.1:1/img", "", []string{"connection refused"}, false},
		{"target is dir", srv.URL + "/img.raw", dir, []string{"is a directory", "/proc/partitions"}, false},
		{"target missing", srv.URL + "/img.raw", filepath.Join(dir, "nodisk"), []string{"does not exist", "/proc/partitions"}, false},
		{"target char device", srv.URL + "/img.raw", "/dev/null", []string{"character device"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFake(t)
			fs.env.stall = 300 * time.Millisecond
			dev := tc.device
			if dev == "" {
				dev = fs.newTarget(t)
			}
			code := fs.run("--yes", tc.image, dev)
			t.Logf("stderr:\n%s", fs.stderr.String())
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, fs.stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(fs.stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, fs.stderr.String())
				}
			}
			if fs.stdout.Len() != 0 {
				t.Errorf("stdout on failure: %q", fs.stdout.String())
			}
			if tc.device == "" && !tc.touched {
				if got, _ := os.ReadFile(dev); !bytes.HasPrefix(got, []byte("OLD!OLD!")) {
					t.Errorf("the target was written although the source failed before writing")
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "nodisk")); err == nil {
				t.Errorf("flash created a missing target")
			}
		})
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "missing IMAGE and DEVICE"},
		{[]string{"img"}, 2, "missing DEVICE"},
		{[]string{"a", "b", "c"}, 2, "too many arguments"},
		{[]string{"--bogus", "a", "b"}, 2, "unknown flag: --bogus"},
		{[]string{"-x", "a", "b"}, 2, "unknown shorthand flag"},
		{[]string{"a", "b", "--sha256"}, 2, "flag needs an argument"},
		{[]string{"--sha256=", "a", "b"}, 2, "--sha256 needs a value"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := newFake(t)
			if code := fs.run(tc.args...); code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(fs.stderr.String(), tc.want) || !strings.Contains(fs.stderr.String(), "Usage: flash") ||
				!strings.Contains(fs.stderr.String(), "Examples:") {
				t.Errorf("stderr lacks %q, the usage or the examples:\n%s", tc.want, fs.stderr.String())
			}
		})
	}
	fs := newFake(t)
	if code := fs.run("--help"); code != 0 || !strings.HasPrefix(fs.stdout.String(), "Usage: flash") {
		t.Errorf("--help: exit %d, stdout %q", code, fs.stdout.String())
	}
	// The exported entry point, as the busybox calls it.
	var out, errb bytes.Buffer
	if code := run([]string{"--nope"}, &out, &errb); code != 2 {
		t.Errorf("run(--nope) = %d, want 2", code)
	}
}

func TestConfirm(t *testing.T) {
	img, fx := getFixtures(t)
	src := filepath.Join(t.TempDir(), "img")
	os.WriteFile(src, fx[formatZstd], 0o644)
	for _, tc := range []struct {
		answer string
		yes    bool
		code   int
	}{{"y\n", false, 0}, {"YES\n", false, 0}, {"n\n", false, 1}, {"\n", false, 1}, {"", false, 1}, {"", true, 0}} {
		t.Run(fmt.Sprintf("%q/yes=%v", tc.answer, tc.yes), func(t *testing.T) {
			fs := newFake(t)
			fs.env.stdinTTY = true
			fs.env.stdin = strings.NewReader(tc.answer)
			dev := fs.newTarget(t)
			args := []string{src, dev}
			if tc.yes {
				args = append([]string{"--yes"}, args...)
			}
			if code := fs.run(args...); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, fs.stderr.String())
			}
			q := fmt.Sprintf("write %s image (zstd-compressed) to %s (regular file)? [y/N]", humanBytes(int64(len(fx[formatZstd]))), dev)
			if asked := strings.Contains(fs.stderr.String(), q); asked == tc.yes {
				t.Errorf("asked=%v with --yes=%v; stderr:\n%s", asked, tc.yes, fs.stderr.String())
			}
			if tc.code == 0 {
				checkTarget(t, dev, img)
			} else {
				if !strings.Contains(fs.stderr.String(), "nothing was written") {
					t.Errorf("stderr:\n%s", fs.stderr.String())
				}
				if got, _ := os.ReadFile(dev); !bytes.HasPrefix(got, []byte("OLD!")) {
					t.Errorf("written without confirmation")
				}
			}
		})
	}
}

func TestProgressNotTerminal(t *testing.T) {
	img, fx := getFixtures(t)
	srv := newServer(t, map[string][]byte{"img": fx[formatRaw]})
	fs := newFake(t)
	dev := fs.newTarget(t)
	if code := fs.run(srv.URL+"/img", dev); code != 0 {
		t.Fatalf("exit %d: %s", code, fs.stderr.String())
	}
	checkTarget(t, dev, img)
	lines := strings.Count(fs.stderr.String(), "MB/s")
	if lines < 2 || lines > 11 || !strings.Contains(fs.stderr.String(), "100%") || strings.Contains(fs.stderr.String(), "\r") {
		t.Errorf("want 2..11 progress lines, up to 100%%, no \\r:\n%s", fs.stderr.String())
	}
}

func TestMountsOf(t *testing.T) {
	mounts := `rootfs / rootfs rw 0 0
proc /proc proc rw,nosuid 0 0
/dev/mmcblk0p1 /boot/firmware vfat rw,relatime 0 0
/dev/mmcblk0p2 /mnt/my\040root ext4 rw 0 0
/dev/mmcblk1p1 /media/sd vfat rw 0 0
/dev/sda1 /mnt/usb ext4 rw 0 0
/dev/loop10 /mnt/loop ext4 rw 0 0
/dev/disk/by-label/DATA /data ext4 rw 0 0
/dev/nvme0n1p3 /srv ext4 rw 0 0
tmpfs /tmp tmpfs rw 0 0
`
	resolve := func(s string) string {
		if s == "/dev/disk/by-label/DATA" {
			return "/dev/sdb2"
		}
		return s
	}
	tests := []struct {
		disk string
		devs []string // from sysfs
		want []string
	}{
		{"mmcblk0", nil, []string{"/dev/mmcblk0p1 on /boot/firmware", "/dev/mmcblk0p2 on /mnt/my root"}},
		{"mmcblk0p2", nil, []string{"/dev/mmcblk0p2 on /mnt/my root"}},
		{"mmcblk1", nil, []string{"/dev/mmcblk1p1 on /media/sd"}},
		{"mmcblk2", nil, nil},
		{"sda", nil, []string{"/dev/sda1 on /mnt/usb"}},
		{"sdb", []string{"/dev/sdb", "/dev/sdb1", "/dev/sdb2"}, []string{"/dev/disk/by-label/DATA on /data"}},
		{"sd", nil, nil}, // not a prefix match
		{"loop1", nil, nil},
		{"loop10", nil, []string{"/dev/loop10 on /mnt/loop"}},
		{"nvme0n1", nil, []string{"/dev/nvme0n1p3 on /srv"}},
		{"nvme0", nil, nil},
	}
	for _, tc := range tests {
		devs := map[string]bool{"/dev/" + tc.disk: true}
		for _, d := range tc.devs {
			devs[d] = true
		}
		got := mountsOf(mounts, tc.disk, devs, resolve)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("mountsOf(%s) (-want +got):\n%s", tc.disk, diff)
		}
	}

	swaps := "Filename\tType\tSize\tUsed\tPriority\n/dev/sda2 partition 1048572 0 -2\n/swapfile file 1 0 -3\n"
	if got := swapsOf(swaps, "sda", map[string]bool{"/dev/sda": true}, resolve); !cmp.Equal(got, []string{"/dev/sda2"}) {
		t.Errorf("swapsOf(sda) = %q", got)
	}
	if got := swapsOf(swaps, "mmcblk0", map[string]bool{"/dev/mmcblk0": true}, resolve); len(got) != 0 {
		t.Errorf("swapsOf(mmcblk0) = %q", got)
	}
}

// TestSysBlock checks the device description and partition list against a
// fake /sys/class/block.
func TestSysBlock(t *testing.T) {
	sys := t.TempDir()
	w := func(p, s string) {
		p = filepath.Join(sys, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("devices/mmcblk0/size", "15269888") // 7.8 GB
	w("devices/mmcblk0/ro", "0")
	w("devices/mmcblk0/device/type", "MMC")
	w("devices/mmcblk0/mmcblk0p1/partition", "1")
	w("devices/mmcblk0/mmcblk0p1/size", "1048576")
	w("devices/mmcblk0/mmcblk0p2/partition", "2")
	w("devices/mmcblk0/mmcblk0p2/size", "14221312")
	w("devices/sda/size", "62521344")
	w("devices/sda/removable", "1")
	w("devices/sda/ro", "1")
	w("devices/sda/device/vendor", "SanDisk ")
	w("devices/sda/device/model", "Ultra Fit       ")
	cls := filepath.Join(sys, "class")
	os.MkdirAll(cls, 0o755)
	for name, target := range map[string]string{
		"mmcblk0": "../devices/mmcblk0", "mmcblk0p1": "../devices/mmcblk0/mmcblk0p1", "sda": "../devices/sda",
	} {
		if err := os.Symlink(target, filepath.Join(cls, name)); err != nil {
			t.Fatal(err)
		}
	}

	got := readSysBlock(cls, "mmcblk0")
	want := sysInfo{known: true, size: 15269888 * 512, parts: []string{"mmcblk0p1", "mmcblk0p2"}, desc: "7.8 GB, eMMC"}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(sysInfo{})); diff != "" {
		t.Errorf("mmcblk0 (-want +got):\n%s", diff)
	}
	got = readSysBlock(cls, "mmcblk0p1")
	want = sysInfo{known: true, size: 1048576 * 512, partition: true, disk: "mmcblk0", desc: "536.9 MB, eMMC, a partition of /dev/mmcblk0"}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(sysInfo{})); diff != "" {
		t.Errorf("mmcblk0p1 (-want +got):\n%s", diff)
	}
	got = readSysBlock(cls, "sda")
	want = sysInfo{known: true, size: 62521344 * 512, ro: true, desc: "32.0 GB, removable: SanDisk Ultra Fit"}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(sysInfo{})); diff != "" {
		t.Errorf("sda (-want +got):\n%s", diff)
	}
	if got := readSysBlock(cls, "nosuch"); got.known {
		t.Errorf("nosuch: %+v", got)
	}
}

func TestIsPartitionOf(t *testing.T) {
	for _, tc := range []struct {
		name, disk string
		want       bool
	}{
		{"sda1", "sda", true}, {"sda12", "sda", true}, {"sdab1", "sda", false}, {"sda", "sda", false},
		{"mmcblk0p1", "mmcblk0", true}, {"mmcblk01", "mmcblk0", false}, {"mmcblk0boot0", "mmcblk0", false},
		{"mmcblk0p", "mmcblk0", false}, {"nvme0n1p2", "nvme0n1", true}, {"loop10", "loop1", false},
	} {
		if got := isPartitionOf(tc.name, tc.disk); got != tc.want {
			t.Errorf("isPartitionOf(%q, %q) = %v", tc.name, tc.disk, got)
		}
	}
}

type failWriter struct {
	after int64
	n     int64
	err   error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.after {
		k := w.after - w.n
		w.n = w.after
		return int(k), w.err
	}
	w.n += int64(len(p))
	return len(p), nil
}

// TestDeviceFull covers an image bigger than the device: by the known
// device size (nothing past it is written) and by ENOSPC from the kernel.
func TestDeviceFull(t *testing.T) {
	img, _ := getFixtures(t)
	tgt := &target{path: "/dev/mmcblk0", size: 6 << 20, block: true}

	var sink bytes.Buffer
	written, rerr, werr := pump(context.Background(), bytes.NewReader(img), &sink, tgt.size, func() {}, func(int64) {})
	if !errors.Is(werr, errTooBig) || rerr != nil || written != 4<<20 || sink.Len() != 4<<20 {
		t.Fatalf("limit: written %d, rerr %v, werr %v", written, rerr, werr)
	}
	msg := tgt.explainWrite(werr, written).Error()
	for _, w := range []string{"larger than /dev/mmcblk0 (6.3 MB)", "bigger device"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message lacks %q: %s", w, msg)
		}
	}

	fw := &failWriter{after: 5<<20 + 7, err: syscall.ENOSPC}
	written, _, werr = pump(context.Background(), bytes.NewReader(img), fw, 0, func() {}, func(int64) {})
	if !errors.Is(werr, syscall.ENOSPC) || written != 5<<20+7 {
		t.Fatalf("ENOSPC: written %d, werr %v", written, werr)
	}
	if msg := tgt.explainWrite(werr, written).Error(); !strings.Contains(msg, "the image is larger than /dev/mmcblk0") {
		t.Errorf("ENOSPC message: %s", msg)
	}
	fw = &failWriter{after: 1 << 20, err: syscall.EIO}
	_, _, werr = pump(context.Background(), bytes.NewReader(img), fw, 0, func() {}, func(int64) {})
	if msg := tgt.explainWrite(werr, 1<<20).Error(); !strings.Contains(msg, "I/O error writing /dev/mmcblk0 at byte 1,048,576") {
		t.Errorf("EIO message: %s", msg)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		head string
		want format
		err  string
	}{
		{"\x1f\x8b\x08\x00", formatGzip, ""},
		{"\xfd7zXZ\x00\x00", formatXz, ""},
		{"\x28\xb5\x2f\xfd\x00", formatZstd, ""},
		{"\xeb\x3c\x90mkfs.fat", formatRaw, ""},
		{"\x00\x00\x00\x00", formatRaw, ""},
		{"BZh91AY&SY", "", "bzip2"},
		{"\x04\x22\x4d\x18", "", "lz4"},
		{"  <html><head>", "", "HTML"},
	} {
		got, err := detect([]byte(tc.head))
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("detect(%q) = %q, %v; want %q, %q", tc.head, got, err, tc.want, tc.err)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 3_200_000_000: "3.2 GB", 7_818_182_656: "7.8 GB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// --disk-image refuses an image without a partition table before writing
// a byte, and writes one that has one.
func TestDiskImage(t *testing.T) {
	notDisk := append([]byte("hsqs"), make([]byte, 4096)...)
	disk := make([]byte, 8192)
	disk[510], disk[511] = 0x55, 0xaa
	copy(disk[1024:], "payload")
	srv := newServer(t, map[string][]byte{"root.squashfs": notDisk, "disk.img": disk, "tiny.img": {1, 2, 3}})
	for _, tc := range []struct {
		name, file string
		ok         bool
	}{{"squashfs", "root.squashfs", false}, {"tiny", "tiny.img", false}, {"disk", "disk.img", true}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFake(t)
			dev := fs.newTarget(t)
			code := fs.run("--yes", "--disk-image", srv.URL+"/"+tc.file, dev)
			got, _ := os.ReadFile(dev)
			if tc.ok {
				if code != 0 || !bytes.HasPrefix(got, disk) {
					t.Fatalf("exit %d; stderr:\n%s", code, fs.stderr.String())
				}
				return
			}
			if code != 1 || !strings.Contains(fs.stderr.String(), "is not a disk image") {
				t.Fatalf("exit %d, want 1 and \"is not a disk image\"; stderr:\n%s", code, fs.stderr.String())
			}
			if !bytes.HasPrefix(got, []byte("OLD!OLD!")) {
				t.Errorf("the target was written")
			}
		})
	}
}
