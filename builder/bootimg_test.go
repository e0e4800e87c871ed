package builder

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ramboot/ramboot/builder/fatimg"
	"github.com/ramboot/ramboot/eeprom"
	"github.com/ramboot/ramboot/kernel"
	"github.com/ramboot/ramboot/tree"
)

var testKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func signKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := testKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fakeBuild runs the write, boot.img and manifest stages of a build of
// board with fake kernel, device tree, firmware and initramfs bytes
// (nothing is downloaded or compiled), into out (subdir: a mixed tree's
// board directory).
func fakeBuild(t *testing.T, board, out, subdir string, epoch int64, key *rsa.PrivateKey) *Build {
	t.Helper()
	b := &Build{Options: Options{Board: board, Out: out, Subdir: subdir, SrcDir: "..", CacheDir: t.TempDir(),
		HTTPBoot: true, SignKey: key, SourceDateEpoch: epoch, Version: "test"}}
	if err := b.prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.Kernel = &kernel.Kernel{Release: "6.12.117+deb13-arm64"}
	b.outFiles["Image"] = bytes.Repeat([]byte("kernel Image of "+board+"\n"), 40000) // ~1 MB
	b.outFiles["rootfs.cpio.gz"] = bytes.Repeat([]byte("initramfs of "+board+"\n"), 20000)
	src := t.TempDir()
	big := func(name string, fw bool) {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(strings.Repeat(name+" of "+board+"\n", 300)), 0o644); err != nil {
			t.Fatal(err)
		}
		b.bigFiles[name] = p
		b.fwNames[name] = fw
	}
	for _, d := range b.Board.Kernel.DTBs {
		big(d.To, false)
	}
	for _, fw := range b.Board.Firmware {
		for _, f := range fw.Files {
			big(f.To, true)
		}
	}
	for _, st := range []func() error{
		func() error { return b.write(t.Context()) },
		func() error { return b.bootImg(t.Context()) },
		func() error { return b.writeManifest(t.Context()) },
	} {
		if err := st(); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestBootImg: --http-boot writes boot.img and boot.sig beside the
// board's files (the tree's root; <board>/ in a mixed tree), holding every
// file of the board and, in a mixed tree, its config.txt without
// os_prefix; boot.sig verifies with the key; the manifest records both.
func TestBootImg(t *testing.T) {
	key := signKey(t)
	for _, tc := range []struct{ board, subdir string }{{"rpi4", ""}, {"rpi5", ""}, {"cm4", "cm4"}, {"rpi4", "rpi4"}} {
		t.Run(tc.board+"/"+tc.subdir, func(t *testing.T) {
			out := t.TempDir()
			b := fakeBuild(t, tc.board, out, tc.subdir, 1700000000, key)
			img, err := os.ReadFile(filepath.Join(out, tc.subdir, "boot.img"))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := os.ReadFile(filepath.Join(out, tc.subdir, "boot.sig"))
			if err != nil {
				t.Fatal(err)
			}
			if err := eeprom.VerifySig(img, sig, &key.PublicKey); err != nil {
				t.Errorf("boot.sig: %v", err)
			}
			if s, err := eeprom.ParseSig(sig); err != nil || s.TS != 1700000000 {
				t.Errorf("boot.sig: ts %d, %v; want 1700000000", s.TS, err)
			}
			if len(img) > MaxBootImg || string(img[54:62]) != "FAT16   " || string(img[43:54]) != "BOOT       " {
				t.Errorf("boot.img: %d bytes, type %q, label %q", len(img), img[54:62], img[43:54])
			}

			// The manifest on disk records both, by their paths in the tree.
			m, err := tree.ReadManifest(out, tc.subdir)
			if err != nil {
				t.Fatal(err)
			}
			bi := m.BootImg
			if bi == nil {
				t.Fatal("manifest has no boot_img")
			}
			want := tree.BootImgInfo{Name: pathIn(tc.subdir, "boot.img"), Size: int64(len(img)), SHA256: sha(img),
				Sig: tree.FileInfo{Name: pathIn(tc.subdir, "boot.sig"), Size: int64(len(sig)), SHA256: sha(sig)}, TS: 1700000000}
			got := *bi
			got.KeySHA256, got.Files = "", nil
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("boot_img %+v\nwant %+v", got, want)
			}
			if pub, _ := eeprom.PublicKeyBin(&key.PublicKey); bi.KeySHA256 != sha(pub) {
				t.Errorf("key_sha256 %s, want the sha256 of pubkey.bin %s", bi.KeySHA256, sha(pub))
			}
			for _, f := range m.Files {
				if strings.HasPrefix(f.Name, "boot.") || strings.Contains(f.Name, "/boot.") {
					t.Errorf("manifest files list %s: boot.img and boot.sig are in boot_img only", f.Name)
				}
			}

			// Every file of the board is in the image, at its root, with the
			// tree's bytes (fatimg writes each file contiguously).
			var names []string
			for _, f := range bi.Files {
				names = append(names, f.Name)
				var data []byte
				if f.Name == "config.txt" && tc.subdir != "" {
					data = []byte(b.bootConfig)
				} else {
					data, err = os.ReadFile(filepath.Join(out, filepath.FromSlash(treeName(b, f.Name))))
					if err != nil {
						t.Fatal(err)
					}
				}
				if sha(data) != f.SHA256 || !bytes.Contains(img, data) {
					t.Errorf("boot.img's %s is not the tree's (sha256 %v, in the image %v)", f.Name, sha(data) == f.SHA256, bytes.Contains(img, data))
				}
			}
			wantNames := []string{"Image", "cmdline.txt", "config.txt", "rootfs.cpio.gz"}
			for _, d := range b.Board.Kernel.DTBs {
				wantNames = append(wantNames, d.To)
			}
			for _, fw := range b.Board.Firmware {
				for _, f := range fw.Files {
					wantNames = append(wantNames, f.To)
				}
			}
			slices.Sort(names)
			slices.Sort(wantNames)
			if !slices.Equal(names, wantNames) {
				t.Errorf("boot.img holds %v, want %v", names, wantNames)
			}
			if tc.board != "rpi5" && !slices.Contains(names, "start4.elf") {
				t.Errorf("a %s boot.img without its firmware: %v", tc.board, names)
			}
			if bytes.Contains(img, []byte("os_prefix")) {
				t.Error("boot.img's config.txt has os_prefix: inside boot.img the files are at its root")
			}
			if !bytes.Contains(img, []byte("kernel=Image\n")) {
				t.Error("boot.img holds no config.txt naming the kernel")
			}
		})
	}
}

func pathIn(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// treeName is where boot.img's file name is in b's tree: firmware at the
// root, the rest in the board's directory.
func treeName(b *Build, name string) string {
	if b.fwNames[name] {
		return name
	}
	return pathIn(b.Subdir, name)
}

// TestBootImgReproducible: the same inputs give the same boot.img and
// boot.sig; another SOURCE_DATE_EPOCH changes the image's time stamps and
// boot.sig's ts:.
func TestBootImgReproducible(t *testing.T) {
	key := signKey(t)
	read := func(dir string) (img, sig []byte) {
		img, err := os.ReadFile(filepath.Join(dir, "boot.img"))
		if err != nil {
			t.Fatal(err)
		}
		sig, err = os.ReadFile(filepath.Join(dir, "boot.sig"))
		if err != nil {
			t.Fatal(err)
		}
		return img, sig
	}
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	fakeBuild(t, "rpi4", a, "", 1700000000, key)
	fakeBuild(t, "rpi4", b, "", 1700000000, key)
	fakeBuild(t, "rpi4", c, "", 1800000000, key)
	imgA, sigA := read(a)
	imgB, sigB := read(b)
	imgC, sigC := read(c)
	if !bytes.Equal(imgA, imgB) || !bytes.Equal(sigA, sigB) {
		t.Error("two builds of the same inputs: boot.img or boot.sig differ")
	}
	if bytes.Equal(imgA, imgC) || len(imgA) != len(imgC) {
		t.Errorf("another epoch: boot.img %d bytes, %d before, equal %v; want the same size, other time stamps", len(imgC), len(imgA), bytes.Equal(imgA, imgC))
	}
	if !bytes.Contains(sigC, []byte("\nts: 1800000000\n")) || bytes.Equal(sigA, sigC) {
		t.Errorf("another epoch: boot.sig\n%s", sigC)
	}
	ma, _ := os.ReadFile(filepath.Join(a, tree.ManifestName))
	mb, _ := os.ReadFile(filepath.Join(b, tree.ManifestName))
	if !bytes.Equal(ma, mb) {
		t.Errorf("manifests differ:\n%s\n%s", ma, mb)
	}
}

// fakeTree is a one-board tree of files (name -> size; sparse) and its
// manifest, for MakeBootImage.
func fakeTree(t *testing.T, files map[string]int64) (string, tree.Board) {
	t.Helper()
	root := t.TempDir()
	m := tree.Manifest{Board: "rpi4", Arch: "arm64", KernelFile: "Image"}
	for name, size := range files {
		p := filepath.Join(root, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, tree.FileInfo{Name: name, Size: size, SHA256: sha(data)})
	}
	return root, tree.Board{Name: "rpi4", Kernel: "Image", Arch: "arm64", Manifest: m}
}

// TestBootImgTooLarge: a boot.img over the bootloader's 128 MiB ramdisk
// limit is refused, by the files' sizes alone and by the image's with the
// FAT's own overhead, with an error that names the limit and the largest file.
func TestBootImgTooLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("reads a 128 MiB file: not in -short")
	}
	key := signKey(t)
	for _, size := range []int64{MaxBootImg + 1<<20, MaxBootImg - 64<<10} {
		root, b := fakeTree(t, map[string]int64{"rootfs.cpio.gz": size, "config.txt": 100})
		_, err := MakeBootImage(root, b, nil, 0, key)
		if !errors.Is(err, fatimg.ErrTooLarge) {
			t.Fatalf("%d bytes of files: err %v, want fatimg.ErrTooLarge", size, err)
		}
		for _, want := range []string{"128 MiB", "134217728", "rootfs.cpio.gz", "--http-boot"} {
			if !strings.Contains(err.Error(), want) && !(want == "rootfs.cpio.gz" && size > MaxBootImg) {
				t.Errorf("%d bytes: error lacks %q: %v", size, want, err)
			}
		}
	}
	// Well under the limit, a big image is made.
	root, b := fakeTree(t, map[string]int64{"rootfs.cpio.gz": 100 << 20, "config.txt": 100})
	bi, err := MakeBootImage(root, b, nil, 0, key)
	if err != nil {
		t.Fatal(err)
	}
	if bi.Info.Size > MaxBootImg || bi.Info.Size < 100<<20 {
		t.Errorf("boot.img of 100 MiB of files: %d bytes", bi.Info.Size)
	}
}

// TestBootImgRefusals: no key (the message says how to make one and where
// its public half goes), a key the bootloader cannot use, a board without
// HTTP boot, a tree changed after its build.
func TestBootImgRefusals(t *testing.T) {
	root, b := fakeTree(t, map[string]int64{"Image": 1000, "config.txt": 10})
	_, err := MakeBootImage(root, b, nil, 0, nil)
	if !errors.Is(err, ErrNoSignKey) {
		t.Fatalf("no key: %v", err)
	}
	for _, want := range []string{"--sign-key", "openssl genrsa -out boot-key.pem 2048", "ramboot eeprom --pubkey boot-key.pem"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no key: the error lacks %q: %v", want, err)
		}
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MakeBootImage(root, b, nil, 0, small); !errors.Is(err, eeprom.ErrKey) || !strings.Contains(err.Error(), "--sign-key") {
		t.Errorf("a 1024-bit key: %v", err)
	}
	if _, err := MakeBootImage(root, tree.Board{Name: "rpi4", Dir: "rpi4", Manifest: b.Manifest}, nil, 0, signKey(t)); err == nil || !strings.Contains(err.Error(), "os_prefix") {
		t.Errorf("a mixed tree's board without its config.txt: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "config.txt"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := MakeBootImage(root, b, nil, 0, signKey(t)); err == nil || !strings.Contains(err.Error(), "changed after its build") {
		t.Errorf("a changed tree: %v", err)
	}

	// The builder refuses before it downloads anything.
	bd := &Build{Options: Options{Board: "rpi4", Out: t.TempDir(), SrcDir: "..", CacheDir: t.TempDir(), HTTPBoot: true}}
	if err := bd.prepare(t.Context()); !errors.Is(err, ErrNoSignKey) {
		t.Errorf("build --http-boot without a key: %v", err)
	}
	for _, n := range []string{"rpi3", "pc", "virt"} {
		bd := &Build{Options: Options{Board: n, Out: t.TempDir(), SrcDir: "..", CacheDir: t.TempDir(), HTTPBoot: true, SignKey: signKey(t)}}
		err := bd.prepare(t.Context())
		if err == nil || !strings.Contains(err.Error(), "cm4, rpi4, rpi5") || !strings.Contains(err.Error(), "board "+n) {
			t.Errorf("build --board %s --http-boot: %v, want an error naming the boards that can", n, err)
		}
	}
	if err := BuildTree(t.Context(), Options{Out: t.TempDir(), HTTPBoot: true}, []string{"rpi3", "rpi4"}); !errors.Is(err, ErrNoSignKey) {
		t.Errorf("a mixed tree --http-boot without a key: %v", err)
	}
	if err := BuildTree(t.Context(), Options{Out: t.TempDir(), HTTPBoot: true, SignKey: signKey(t)}, []string{"rpi3", "pc"}); err == nil || !strings.Contains(err.Error(), "cm4, rpi4, rpi5") {
		t.Errorf("a mixed tree of boards without HTTP boot: %v", err)
	}
}
