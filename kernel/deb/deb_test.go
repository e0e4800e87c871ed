package deb

import (
	"archive/tar"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ramboot/ramboot/kernel/deb/debtest"
)

var testFiles = []debtest.File{
	{Name: "./"},
	{Name: "./boot/"},
	{Name: "./boot/vmlinuz-6.1.0-test-arm64", Body: bytes.Repeat([]byte("kernel"), 1000)},
	{Name: "./usr/lib/linux-image-6.1.0-test-arm64/broadcom/bcm2711-rpi-4-b.dtb", Body: []byte("dtb\n")},
	{Name: "./usr/share/doc/x/odd", Body: []byte("odd")},
	{Name: "./vmlinuz", Link: "boot/vmlinuz-6.1.0-test-arm64"},
}

type entry struct {
	Name string
	Type byte
	Body string
	Link string
}

var wantEntries = []entry{
	{".", tar.TypeDir, "", ""},
	{"boot", tar.TypeDir, "", ""},
	{"boot/vmlinuz-6.1.0-test-arm64", tar.TypeReg, strings.Repeat("kernel", 1000), ""},
	{"usr/lib/linux-image-6.1.0-test-arm64/broadcom/bcm2711-rpi-4-b.dtb", tar.TypeReg, "dtb\n", ""},
	{"usr/share/doc/x/odd", tar.TypeReg, "odd", ""},
	{"vmlinuz", tar.TypeSymlink, "", "boot/vmlinuz-6.1.0-test-arm64"},
}

func writeDeb(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.deb")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func collect(t testing.TB, path string) ([]entry, error) {
	t.Helper()
	var got []entry
	err := Walk(path, func(h *tar.Header, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		got = append(got, entry{h.Name, h.Typeflag, string(b), h.Linkname})
		return nil
	})
	return got, err
}

func TestWalkAndControl(t *testing.T) {
	for _, comp := range []string{"gz", "xz", "zst", "none"} {
		for _, style := range []string{"gnu", "sysv", "bsd"} {
			t.Run(comp+"/"+style, func(t *testing.T) {
				p := writeDeb(t, debtest.MustBuild(debtest.Package{
					Control:     map[string]string{"Package": "linux-image-test", "Version": "1:6.1.0-1~bpo1", "Description": "a kernel\n multi-line\n .\n end"},
					Files:       testFiles,
					Compression: comp,
					ARNames:     style,
				}))
				got, err := collect(t, p)
				if err != nil {
					t.Fatalf("Walk: %v", err)
				}
				if diff := cmp.Diff(wantEntries, got); diff != "" {
					t.Errorf("Walk entries (-want +got):\n%s", diff)
				}
				ctrl, err := Control(p)
				if err != nil {
					t.Fatalf("Control: %v", err)
				}
				want := map[string]string{
					"Package":      "linux-image-test",
					"Version":      "1:6.1.0-1~bpo1",
					"Architecture": "arm64",
					"Description":  "a kernel\nmulti-line\n\nend",
				}
				if diff := cmp.Diff(want, ctrl); diff != "" {
					t.Errorf("Control (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// bzip2 has no writer in the standard library: this is a bzip2-compressed
// tar holding "./hello.txt" = "hello bzip2\n", made with Python's bz2 module.
const bz2Tar = "425a6839314159265359d928eb8f00005c7b80ca1001004001ff8002007264de5004082000750d534f5335034687a80626d412511a640d000007dd51091081ee42115c603dac950218a2d872de2b645cf4418010c04281450c238f72cdb6b456e2098f8179588981395157aa64b0a920fc5dc914e1424364a3ae3c"

func TestWalkBzip2AndLongNames(t *testing.T) {
	data, err := hex.DecodeString(bz2Tar)
	if err != nil {
		t.Fatal(err)
	}
	ctl, _ := debtest.Tar([]debtest.File{{Name: "./control", Body: []byte("Package: b\n")}})
	raw, err := debtest.AR("gnu", []debtest.Member{
		{Name: "debian-binary", Data: []byte("2.0\n")},
		{Name: "control.tar", Data: ctl},
		{Name: "_a-member-with-a-long-name", Data: []byte("ignored")},
		{Name: "data.tar.bz2", Data: data},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("//              ")) {
		t.Fatal("test archive has no GNU long-name table")
	}
	got, err := collect(t, writeDeb(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []entry{{"hello.txt", tar.TypeReg, "hello bzip2\n", ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	ctrl, err := Control(writeDeb(t, raw))
	if err != nil || ctrl["Package"] != "b" {
		t.Errorf("Control = %v, %v", ctrl, err)
	}
}

func TestWalkStopAndCallbackError(t *testing.T) {
	p := writeDeb(t, debtest.MustBuild(debtest.Package{Files: testFiles, Compression: "xz"}))
	n := 0
	err := Walk(p, func(h *tar.Header, r io.Reader) error {
		n++
		if h.Name == "boot" {
			return ErrStop
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Errorf("Walk with ErrStop = %v after %d entries, want nil after 2", err, n)
	}
	boom := errors.New("boom")
	err = Walk(p, func(h *tar.Header, r io.Reader) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("Walk = %v, want it to wrap the callback's error", err)
	}
	if err := Walk(filepath.Join(t.TempDir(), "missing.deb"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Walk(missing) = %v, want ErrNotExist", err)
	}
}

func TestErrors(t *testing.T) {
	good := debtest.MustBuild(debtest.Package{Files: testFiles})
	ar := func(ms ...debtest.Member) []byte {
		b, err := debtest.AR("gnu", ms)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	db := debtest.Member{Name: "debian-binary", Data: []byte("2.0\n")}
	tarData, _ := debtest.Tar(testFiles)
	badSize := bytes.Clone(good)
	copy(badSize[8+48:], "12x4      ")
	badMagic := bytes.Clone(good)
	copy(badMagic[8+58:], "XX")
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a Debian package (no !<arch> magic)"},
		{"text", []byte("hello world, this is not an archive"), "not a Debian package (no !<arch> magic)"},
		{"bad size", badSize, "bad size"},
		{"bad terminator", badMagic, "bad terminator"},
		{"no members", []byte("!<arch>\n"), "no data.tar member"},
		{"first member", ar(debtest.Member{Name: "data.tar", Data: tarData}), `first ar member is "data.tar"`},
		{"format 3", ar(debtest.Member{Name: "debian-binary", Data: []byte("3.0\n")}), `unsupported Debian package format "3.0"`},
		{"no data", ar(db, debtest.Member{Name: "control.tar", Data: tarData}), "no data.tar member"},
		{"compression", ar(db, debtest.Member{Name: "data.tar.lz4", Data: tarData}), `unsupported compression ".lz4"`},
		{"not gzip", ar(db, debtest.Member{Name: "data.tar.gz", Data: tarData}), "gzip: "},
		{"not xz", ar(db, debtest.Member{Name: "data.tar.xz", Data: tarData}), "xz: "},
		{"not zstd", ar(db, debtest.Member{Name: "data.tar.zst", Data: tarData}), "data.tar.zst: "},
		{"not tar", ar(db, debtest.Member{Name: "data.tar", Data: bytes.Repeat([]byte("x"), 1024)}), "data.tar: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeDeb(t, tc.data)
			_, err := collect(t, p)
			if err == nil {
				t.Fatalf("Walk succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), p+": ") {
				t.Errorf("Walk error = %q, want %q prefixed by the file name", err, tc.want)
			}
		})
	}
}

// Every truncation of a valid package must give an error, never a panic or
// a silently short listing. (Only the final ar padding byte may be missing.)
func TestTruncated(t *testing.T) {
	for _, comp := range []string{"gz", "xz", "zst", "none"} {
		full := debtest.MustBuild(debtest.Package{Files: testFiles, Compression: comp})
		dir := t.TempDir()
		step := 1
		if testing.Short() {
			step = 7
		}
		for n := 0; n < len(full)-1; n += step {
			p := filepath.Join(dir, "t.deb")
			if err := os.WriteFile(p, full[:n], 0o644); err != nil {
				t.Fatal(err)
			}
			if err := Walk(p, func(*tar.Header, io.Reader) error { return nil }); err == nil {
				t.Fatalf("%s: Walk of first %d of %d bytes succeeded", comp, n, len(full))
			}
		}
	}
}

func TestControlErrors(t *testing.T) {
	noControl := debtest.MustBuild(debtest.Package{})
	// Replace the control member by one without a control file.
	ctl, _ := debtest.Tar([]debtest.File{{Name: "./md5sums", Body: []byte("x")}})
	raw, _ := debtest.AR("gnu", []debtest.Member{{Name: "debian-binary", Data: []byte("2.0\n")}, {Name: "control.tar", Data: ctl}})
	if _, err := Control(writeDeb(t, raw)); err == nil || !strings.Contains(err.Error(), "no control file") {
		t.Errorf("Control without control file = %v", err)
	}
	bad, _ := debtest.Tar([]debtest.File{{Name: "./control", Body: []byte(" continuation first\n")}})
	raw, _ = debtest.AR("gnu", []debtest.Member{{Name: "debian-binary", Data: []byte("2.0\n")}, {Name: "control.tar", Data: bad}})
	if _, err := Control(writeDeb(t, raw)); err == nil || !strings.Contains(err.Error(), "continuation line") {
		t.Errorf("Control with malformed control = %v", err)
	}
	if _, err := Control(writeDeb(t, noControl[:20])); err == nil {
		t.Error("Control of truncated package succeeded")
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"./":             ".",
		".":              ".",
		"./boot/":        "boot",
		"./boot/vmlinuz": "boot/vmlinuz",
		"/etc/x":         "etc/x",
		"././a":          "a",
		"usr/bin":        "usr/bin",
		"":               ".",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzWalk(f *testing.F) {
	for _, comp := range []string{"gz", "xz", "zst", "none"} {
		f.Add(debtest.MustBuild(debtest.Package{Files: testFiles[:4], Compression: comp}))
	}
	bsd := debtest.MustBuild(debtest.Package{Files: testFiles[:3], ARNames: "bsd", Compression: "none"})
	f.Add(bsd)
	f.Add([]byte("!<arch>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := walkReader(bytes.NewReader(data), "fuzz.deb", func(h *tar.Header, r io.Reader) error {
			n++
			if n > 1000 {
				return ErrStop
			}
			_, err := io.Copy(io.Discard, io.LimitReader(r, 1<<20))
			return err
		})
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.deb: ") {
			t.Errorf("error does not name the file: %v", err)
		}
		_, _ = controlReader(bytes.NewReader(data), "fuzz.deb")
	})
}

func Example() {
	dir, _ := os.MkdirTemp("", "deb-example")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "linux-image.deb")
	os.WriteFile(p, debtest.MustBuild(debtest.Package{
		Control: map[string]string{"Package": "linux-image-6.1.0-arm64"},
		Files:   []debtest.File{{Name: "./boot/"}, {Name: "./boot/vmlinuz-6.1.0-arm64", Body: []byte("Image")}},
	}), 0o644)

	ctrl, _ := Control(p)
	fmt.Println(ctrl["Package"], ctrl["Architecture"])
	Walk(p, func(h *tar.Header, r io.Reader) error {
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(r)
			fmt.Printf("%s (%d bytes)\n", h.Name, len(b))
		}
		return nil
	})
	// Output:
	// linux-image-6.1.0-arm64 arm64
	// boot/vmlinuz-6.1.0-arm64 (5 bytes)
}
