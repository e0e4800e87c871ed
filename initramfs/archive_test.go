package initramfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/google/go-cmp/cmp"

	"github.com/ramboot/ramboot/internal/testenv"
)

type rec struct {
	Name string
	Mode uint32
	Size int64
	Link string
	Data string
	Time int64
	UID  int
}

// readAll reads every newc segment of a (possibly concatenated) archive
// with cavaliergopher's reader.
func readAll(t *testing.T, data []byte) []rec {
	t.Helper()
	var out []rec
	for len(bytes.TrimLeft(data, "\x00")) > 0 {
		data = bytes.TrimLeft(data, "\x00")
		br := bytes.NewReader(data)
		r := cpio.NewReader(br)
		for {
			h, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("reading archive: %v", err)
			}
			body, _ := io.ReadAll(r)
			out = append(out, rec{Name: h.Name, Mode: uint32(h.Mode), Size: h.Size, Link: h.Linkname, Data: string(body), Time: h.ModTime.Unix(), UID: h.Uid})
		}
		// The reader stops right after the trailer; the next segment follows.
		data = data[len(data)-br.Len():]
	}
	return out
}

func sample(t *testing.T, order int) *Archive {
	t.Helper()
	a := New()
	add := []func() error{
		func() error { return a.File("etc/hostname", 0o644, []byte("node\n")) },
		func() error { return a.Symlink("bin/sh", "../bbin/gosh") },
		func() error { return a.File("bbin/bb", 0o755, []byte("ELF...")) },
		func() error { return a.CharDev("dev/console", 0o600, 5, 1) },
		func() error { return a.Dir("tmp", 0o1777|os.ModeSticky) },
	}
	if order == 1 {
		for i, j := 0, len(add)-1; i < j; i, j = i+1, j-1 {
			add[i], add[j] = add[j], add[i]
		}
	}
	for _, f := range add {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func TestReproducible(t *testing.T) {
	var outs [][]byte
	for order := 0; order < 2; order++ {
		var buf bytes.Buffer
		if err := sample(t, order).WriteGzip(&buf, Options{ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, buf.Bytes())
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("same entries added in another order gave different bytes")
	}
	// A different time gives different bytes: the time is really written.
	var buf bytes.Buffer
	if err := sample(t, 0).WriteGzip(&buf, Options{ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(buf.Bytes(), outs[0]) {
		t.Fatal("ModTime had no effect")
	}
	// Fixed gzip header: no name, no mtime.
	zr, err := gzip.NewReader(bytes.NewReader(outs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Fatalf("gzip header carries name %q time %v", zr.Name, zr.ModTime)
	}
}

func TestContents(t *testing.T) {
	var buf bytes.Buffer
	if err := sample(t, 0).WriteCPIO(&buf, Options{ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, buf.Bytes())
	want := []rec{
		// One stream in path order, the device node in it.
		{Name: "bbin", Mode: cpio.TypeDir | 0o755, Time: 1700000000},
		{Name: "bbin/bb", Mode: cpio.TypeReg | 0o755, Size: 6, Data: "ELF...", Time: 1700000000},
		{Name: "bin", Mode: cpio.TypeDir | 0o755, Time: 1700000000},
		{Name: "bin/sh", Mode: cpio.TypeSymlink | 0o777, Link: "../bbin/gosh", Time: 1700000000},
		{Name: "dev", Mode: cpio.TypeDir | 0o755, Time: 1700000000},
		{Name: "dev/console", Mode: cpio.TypeChar | 0o600, Time: 1700000000},
		{Name: "etc", Mode: cpio.TypeDir | 0o755, Time: 1700000000},
		{Name: "etc/hostname", Mode: cpio.TypeReg | 0o644, Size: 5, Data: "node\n", Time: 1700000000},
		{Name: "tmp", Mode: cpio.TypeDir | cpio.ModeSticky | 0o777, Time: 1700000000},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("archive contents (-want +got):\n%s", diff)
	}
	// The device numbers are in the raw header: rdevmajor=5, rdevminor=1.
	i := bytes.Index(buf.Bytes(), []byte("dev/console\x00"))
	hdr := string(buf.Bytes()[i-110 : i])
	if maj, min := hdr[78:86], hdr[86:94]; maj != "00000005" || min != "00000001" {
		t.Fatalf("dev/console rdev = %s:%s, want 00000005:00000001", maj, min)
	}
}

// TestOneStream: the archive is one newc stream, so any reader sees every
// entry: one trailer, at the end, the whole padded to a 512-byte block,
// inode numbers 1..n in path order.
func TestOneStream(t *testing.T) {
	var buf bytes.Buffer
	a := sample(t, 0)
	if err := a.WriteCPIO(&buf, Options{}); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if n := bytes.Count(data, []byte("TRAILER!!!")); n != 1 {
		t.Fatalf("%d trailers, want 1", n)
	}
	if len(data)%512 != 0 {
		t.Errorf("archive is %d bytes, not a multiple of 512", len(data))
	}
	// A single reader pass (no segment loop) sees every entry.
	r := cpio.NewReader(bytes.NewReader(data))
	var names []string
	for ino := int64(1); ; ino++ {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Inode != ino {
			t.Errorf("%s: inode %d, want %d", h.Name, h.Inode, ino)
		}
		names = append(names, h.Name)
	}
	var want []string
	for _, e := range a.Entries() {
		want = append(want, e.Path)
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("one pass of a reader (-want +got):\n%s", diff)
	}
}

// TestGNUCpioLists: `zcat rootfs.cpio.gz | cpio -t` (GNU cpio) lists every
// entry, the device nodes with their numbers and the files after them.
func TestGNUCpioLists(t *testing.T) {
	bin, err := exec.LookPath("cpio")
	if err != nil {
		testenv.Skip(t, "GNU cpio not installed (e2e/deps.sh installs it)")
	}
	a := sample(t, 0)
	// Odd sizes, so that padding after names and bodies is exercised, and
	// the special permission bits.
	if err := a.File("usr/bin/odd", 0o4755|os.ModeSetuid, []byte("12345")); err != nil {
		t.Fatal(err)
	}
	if err := a.CharDev("dev/null", 0o666, 1, 3); err != nil {
		t.Fatal(err)
	}
	if err := a.File("init", 0o755, bytes.Repeat([]byte{0x7f}, 70001)); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	if err := a.WriteGzip(&gz, Options{ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	list := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stdin = bytes.NewReader(plain)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("cpio %v: %v\n%s", args, err, stderr.String())
		}
		if strings.Contains(stderr.String(), "warning") || strings.Contains(stderr.String(), "junk") {
			t.Errorf("cpio %v complains:\n%s", args, stderr.String())
		}
		return out.String()
	}
	var want []string
	for _, e := range a.Entries() {
		want = append(want, e.Path)
	}
	got := strings.Fields(list("-t", "--quiet"))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("cpio -t (-want +got):\n%s", diff)
	}
	long := list("-tv", "--quiet", "--numeric-uid-gid")
	for _, w := range []string{"crw-------", "1,   3", "5,   1", "-rwsr-xr-x", "drwxrwxrwt", "70001", "bin/sh -> ../bbin/gosh"} {
		if !strings.Contains(long, w) {
			t.Errorf("cpio -tv lacks %q:\n%s", w, long)
		}
	}
	// Verify the data too: cpio extracts the regular files as a user.
	dir := t.TempDir()
	cmd := exec.Command(bin, "-i", "--quiet", "--make-directories", "--no-absolute-filenames", "--nonmatching", "dev/*")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(plain)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for p, content := range map[string]string{"etc/hostname": "node\n", "usr/bin/odd": "12345", "bbin/bb": "ELF..."} {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(got) != content {
			t.Errorf("extracted %s = %q, %v; want %q", p, got, err, content)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "init")); len(got) != 70001 {
		t.Errorf("extracted init has %d bytes, want 70001", len(got))
	}
}

func TestOverlayOrderAndErrors(t *testing.T) {
	base, site := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(base, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(base, "etc", "motd"), []byte("base"), 0o644))
	must(os.WriteFile(filepath.Join(base, "etc", "keep"), []byte("kept"), 0o600))
	must(os.MkdirAll(filepath.Join(site, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(site, "etc", "motd"), []byte("site"), 0o644))
	must(os.Symlink("motd", filepath.Join(site, "etc", "issue")))
	a := New()
	must(a.AddTree(base, ""))
	must(a.AddTree(site, ""))
	if e, _ := a.Get("etc/motd"); string(e.Data) != "site" {
		t.Fatalf("later overlay did not win: %q", e.Data)
	}
	if e, _ := a.Get("etc/keep"); e.Perm != 0o600 || string(e.Data) != "kept" {
		t.Fatalf("etc/keep = %+v", e)
	}
	if e, _ := a.Get("etc/issue"); e.Kind != KindSymlink || e.Link != "motd" {
		t.Fatalf("etc/issue = %+v", e)
	}

	bad := t.TempDir()
	must(syscall.Mkfifo(filepath.Join(bad, "fifo"), 0o644))
	err := New().AddTree(bad, "")
	if err == nil || !strings.Contains(err.Error(), "fifo") || !strings.Contains(err.Error(), "only files, directories and symlinks") {
		t.Fatalf("fifo in overlay: err = %v", err)
	}
	if err := New().AddTree(filepath.Join(bad, "nope"), ""); err == nil {
		t.Fatal("missing overlay accepted")
	}
	// A file where a directory is needed.
	a2 := New()
	must(a2.File("etc", 0o644, nil))
	if err := a2.File("etc/x", 0o644, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file under file: err = %v", err)
	}
	if err := a2.File("../x", 0o644, nil); !errors.Is(err, ErrBadPath) {
		t.Fatalf("../x: err = %v", err)
	}
}

func TestToolsListsEveryCommand(t *testing.T) {
	data, err := os.ReadFile("tools.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Commands {
		if !strings.Contains(string(data), `_ "`+c+`"`) {
			t.Errorf("tools.go does not import %s: add it so go.mod pins its dependencies", c)
		}
	}
}
