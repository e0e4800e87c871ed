package initramfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/google/go-cmp/cmp"
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
// with cavaliergopher's reader, plus the raw device-node headers.
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
		// The device segment comes first, with its parent.
		{Name: "dev", Mode: cpio.TypeDir | 0o755, Time: 1700000000},
		{Name: "dev/console", Mode: cpio.TypeChar | 0o600, Time: 1700000000},
		{Name: "bbin", Mode: cpio.TypeDir | 0o755, Time: 1700000000},
		{Name: "bbin/bb", Mode: cpio.TypeReg | 0o755, Size: 6, Data: "ELF...", Time: 1700000000},
		{Name: "bin", Mode: cpio.TypeDir | 0o755, Time: 1700000000},
		{Name: "bin/sh", Mode: cpio.TypeSymlink | 0o777, Link: "../bbin/gosh", Time: 1700000000},
		{Name: "dev", Mode: cpio.TypeDir | 0o755, Time: 1700000000},
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
