package tree

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// write writes a file of a test tree (name is slash-separated).
func write(t *testing.T, root, name string, data []byte) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, data); err != nil {
		t.Fatal(err)
	}
}

func writeManifest(t *testing.T, root, dir string, m any) []byte {
	t.Helper()
	data, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, filepath.Join(dir, ManifestName), data)
	return data
}

func TestOpenOneBoard(t *testing.T) {
	root := t.TempDir()
	m := Manifest{Board: "rpi4", Arch: "arm64", KernelFile: "Image",
		Kernel: KernelInfo{Release: "6.1.0-rpi7-rpi-v8", Source: "archive bookworm"},
		Files:  []FileInfo{{Name: "Image", Size: 1, SHA256: "x"}}}
	written := writeManifest(t, root, "", m)

	tr, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Mixed != nil {
		t.Errorf("one-board tree: Mixed = %+v, want nil", tr.Mixed)
	}
	want := []Board{{Name: "rpi4", Dir: "", Arch: "arm64", Kernel: "Image", Manifest: m}}
	if diff := cmp.Diff(want, tr.Boards); diff != "" {
		t.Errorf("boards (-want +got):\n%s", diff)
	}
	if got := tr.Boards[0].Path("cmdline.txt"); got != "cmdline.txt" {
		t.Errorf("Path = %q, want cmdline.txt", got)
	}
	// What is read back marshals to the bytes written.
	got, err := ReadManifest(root, "")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Marshal(got)
	if !bytes.Equal(again, written) {
		t.Errorf("read and marshalled again:\n%s\nwant:\n%s", again, written)
	}
}

func TestOpenMixed(t *testing.T) {
	root := t.TempDir()
	mixed := MixedManifest{Boards: []string{"rpi4", "pc"}, Files: []FileInfo{{Name: "bootcode.bin", Size: 4}},
		TFTPPayload: map[string]int64{"rpi4": 10, "pc": 20}}
	writeManifest(t, root, "", mixed)
	pi := Manifest{Board: "rpi4", Arch: "arm64", KernelFile: "Image"}
	pc := Manifest{Board: "pc", Arch: "amd64", KernelFile: "vmlinuz"}
	writeManifest(t, root, "rpi4", pi)
	writeManifest(t, root, "pc", pc)

	tr, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&mixed, tr.Mixed); diff != "" {
		t.Errorf("mixed manifest (-want +got):\n%s", diff)
	}
	want := []Board{ // the root manifest's order
		{Name: "rpi4", Dir: "rpi4", Arch: "arm64", Kernel: "Image", Manifest: pi},
		{Name: "pc", Dir: "pc", Arch: "amd64", Kernel: "vmlinuz", Manifest: pc},
	}
	if diff := cmp.Diff(want, tr.Boards); diff != "" {
		t.Errorf("boards (-want +got):\n%s", diff)
	}
	if got := tr.Boards[1].Path(tr.Boards[1].Kernel); got != "pc/vmlinuz" {
		t.Errorf("Path = %q, want pc/vmlinuz", got)
	}
}

// TestOpenOldTree: a tree built before manifests named the kernel file
// is read by the file it holds (vmlinuz: a PC; else a Pi's Image).
func TestOpenOldTree(t *testing.T) {
	for _, tc := range []struct {
		files        []string
		kernel, arch string
	}{
		{[]string{"vmlinuz"}, "vmlinuz", "amd64"},
		{[]string{"Image"}, "Image", "arm64"},
	} {
		root := t.TempDir()
		write(t, root, ManifestName, []byte(`{"board": "old"}`))
		for _, f := range tc.files {
			write(t, root, f, []byte("k"))
		}
		tr, err := Open(root)
		if err != nil {
			t.Fatal(err)
		}
		if b := tr.Boards[0]; b.Kernel != tc.kernel || b.Arch != tc.arch {
			t.Errorf("%v: kernel %q (%s), want %q (%s)", tc.files, b.Kernel, b.Arch, tc.kernel, tc.arch)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	corrupt := t.TempDir()
	write(t, corrupt, ManifestName, []byte(`{"board": "rpi4", `))
	badBoard := t.TempDir()
	writeManifest(t, badBoard, "", MixedManifest{Boards: []string{"rpi4", "pc"}})
	writeManifest(t, badBoard, "rpi4", Manifest{Board: "rpi4", Arch: "arm64", KernelFile: "Image"})
	write(t, badBoard, "pc/"+ManifestName, []byte(`{"board": "pc", "arch": 7}`))
	missingBoard := t.TempDir()
	writeManifest(t, missingBoard, "", MixedManifest{Boards: []string{"pc"}})
	wrongBoard := t.TempDir()
	writeManifest(t, wrongBoard, "", MixedManifest{Boards: []string{"pc"}})
	writeManifest(t, wrongBoard, "pc", Manifest{Board: "rpi4"})
	noBoard := t.TempDir()
	write(t, noBoard, ManifestName, []byte(`{"files": []}`))

	for _, tc := range []struct {
		name, root, want string
		notExist         bool
	}{
		{"no manifest", t.TempDir(), ManifestName, true},
		{"corrupt", corrupt, filepath.Join(corrupt, ManifestName) + ": unexpected end of JSON input", false},
		{"corrupt board", badBoard, filepath.Join(badBoard, "pc", ManifestName) + ": json: cannot unmarshal", false},
		{"missing board", missingBoard, filepath.Join("pc", ManifestName), true},
		{"wrong board", wrongBoard, `for board "rpi4", the tree's manifest says "pc"`, false},
		{"no board", noBoard, "names no board", false},
	} {
		_, err := Open(tc.root)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one with %q", tc.name, err, tc.want)
		}
		if got := errors.Is(err, fs.ErrNotExist); got != tc.notExist {
			t.Errorf("%s: errors.Is(err, fs.ErrNotExist) = %v, want %v", tc.name, got, tc.notExist)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.gz")
	for _, data := range []string{"one", "two"} {
		if err := WriteFile(p, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); string(got) != data {
			t.Fatalf("%q, want %q", got, data)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("files left: %v", ents)
	}
	if err := WriteFile(filepath.Join(dir, "nodir", "x"), nil); err == nil || !strings.Contains(err.Error(), "writing "+filepath.Join(dir, "nodir", "x")) {
		t.Fatalf("write into a missing directory: err %v, want one naming the file", err)
	}
}

// TestBootImgManifest: boot_img is in a board's manifest when the build
// made one, read back as written, and absent otherwise.
func TestBootImgManifest(t *testing.T) {
	root := t.TempDir()
	bi := &BootImgInfo{Name: "rpi4/boot.img", Size: 2117632, SHA256: strings.Repeat("a", 64),
		Sig: FileInfo{Name: "rpi4/boot.sig", Size: 598, SHA256: strings.Repeat("b", 64)}, TS: 1700000000,
		KeySHA256: strings.Repeat("c", 64), Files: []FileInfo{{Name: "Image", Size: 1, SHA256: "x"}}}
	writeManifest(t, root, "", MixedManifest{Boards: []string{"rpi4"}})
	data := writeManifest(t, root, "rpi4", Manifest{Board: "rpi4", BootImg: bi})
	for _, want := range []string{`"boot_img": {`, `"name": "rpi4/boot.img"`, `"sig": {`, `"key_sha256"`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("manifest lacks %s:\n%s", want, data)
		}
	}
	tr, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	b := tr.Boards[0]
	if diff := cmp.Diff(bi, b.Manifest.BootImg); diff != "" {
		t.Errorf("boot_img (-want +got):\n%s", diff)
	}
	if got := b.Path(BootImgName); got != bi.Name {
		t.Errorf("Path(BootImgName) = %s, want %s", got, bi.Name)
	}
	if none, _ := Marshal(Manifest{Board: "pc"}); bytes.Contains(none, []byte("boot_img")) {
		t.Errorf("a manifest without boot.img names one:\n%s", none)
	}
}
