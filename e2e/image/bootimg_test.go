package image

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/builder"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/eeprom"
	"github.com/ramboot/ramboot/internal/testenv"
	"github.com/ramboot/ramboot/tree"
)

// bootTool is the path of a program the boot.img peers need; a missing
// one skips (fails under RAMBOOT_STRICT=1).
func bootTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p
		}
	}
	testenv.Skipf(t, "%s not installed (package %s; e2e/deps.sh installs it)", name, pkg)
	return ""
}

// peer runs a peer program and returns its standard output; a failure
// is fatal, with its standard error.
func peer(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MTOOLS_SKIP_CHECK=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// TestRpi4BootImg makes the HTTP-boot boot.img and boot.sig of the cached
// rpi4 tree with the builder's own function (what `ramboot build --http-boot`
// writes, without a second build) and checks them with the peers: mtools
// reads back every file of the tree, byte for byte and nothing else;
// fsck.fat finds nothing to say; upstream's rpi-eeprom-digest verifies
// boot.sig with the public half of a key openssl made, and refuses a
// changed image; the same inputs give the same bytes.
func TestRpi4BootImg(t *testing.T) {
	dir, _ := cache.Image(t, "rpi4")
	mcopy, mdir := bootTool(t, "mcopy", "mtools"), bootTool(t, "mdir", "mtools")
	fsck := bootTool(t, "fsck.fat", "dosfstools")
	openssl := bootTool(t, "openssl", "openssl")
	for _, n := range []string{"xxd", "sha256sum", "awk", "mktemp"} {
		bootTool(t, n, map[string]string{"xxd": "xxd", "sha256sum": "coreutils", "awk": "mawk", "mktemp": "coreutils"}[n])
	}
	tr, err := tree.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := tr.Boards[0]

	// The key as a user makes it (README, ErrNoSignKey).
	work := t.TempDir()
	keyPath, pubPath := filepath.Join(work, "boot-key.pem"), filepath.Join(work, "pub.pem")
	peer(t, openssl, "genrsa", "-out", keyPath, "2048")
	peer(t, openssl, "rsa", "-in", keyPath, "-pubout", "-out", pubPath)
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	key, err := eeprom.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}

	epoch := b.Manifest.SourceDate
	bi, err := builder.MakeBootImage(dir, b, nil, epoch, key)
	if err != nil {
		t.Fatal(err)
	}
	img, sigPath := filepath.Join(work, tree.BootImgName), filepath.Join(work, tree.BootSigName)
	if err := os.WriteFile(img, bi.Img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sigPath, bi.Sig, 0o644); err != nil {
		t.Fatal(err)
	}
	var files int64
	for _, f := range bi.Info.Files {
		files += f.Size
	}
	t.Logf("rpi4 boot.img: %d bytes (%.1f MiB), %d files of %d bytes, sha256 %s; the TFTP payload is %d bytes",
		bi.Info.Size, float64(bi.Info.Size)/(1<<20), len(bi.Info.Files), files, bi.Info.SHA256, b.Manifest.TFTPPayload)
	if bi.Info.Name != "boot.img" || bi.Info.Sig.Name != "boot.sig" {
		t.Errorf("a one-board tree's boot.img at %s, boot.sig at %s; want both at the root", bi.Info.Name, bi.Info.Sig.Name)
	}

	// Exactly the tree's files, each byte-equal (config.txt included: a
	// one-board tree's has no os_prefix).
	var want []string
	for _, f := range b.Manifest.Files {
		want = append(want, "::/"+f.Name)
	}
	for _, f := range []string{"Image", "rootfs.cpio.gz", "config.txt", "cmdline.txt", "bcm2711-rpi-4-b.dtb",
		"start4.elf", "fixup4.dat", "start4cd.elf", "fixup4cd.dat", "bl31.bin"} {
		if !slices.Contains(want, "::/"+f) {
			t.Errorf("the rpi4 tree's manifest lacks %s", f)
		}
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(peer(t, mdir, "-/", "-b", "-i", img, "::"))), "\n") {
		if !strings.HasSuffix(l, "/") { // directories
			got = append(got, l)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("mdir lists\n%s\nwant the tree's files\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range b.Manifest.Files {
		inImg := peer(t, mcopy, "-n", "-i", img, "::/"+f.Name, "-")
		inTree, err := os.ReadFile(filepath.Join(dir, b.Path(f.Name)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(inImg, inTree) {
			t.Errorf("mcopy ::/%s: %d bytes, not the tree's %d", f.Name, len(inImg), len(inTree))
		}
	}
	if cfg := peer(t, mcopy, "-n", "-i", img, "::/config.txt", "-"); bytes.Contains(cfg, []byte("os_prefix")) {
		t.Errorf("boot.img's config.txt has os_prefix:\n%s", cfg)
	}

	// fsck.fat: exit 0 and only the lines of a clean FAT16.
	out, err := exec.Command(fsck, "-n", "-v", "-V", img).CombinedOutput()
	if err != nil {
		t.Errorf("fsck.fat -n: %v\n%s", err, out)
	}
	clean := regexp.MustCompile(`^(fsck\.fat \d|Checking we can access|Boot sector contents:|System ID |Media byte |\s+\d+ (bytes per|reserved sector|FATs, 16 bit|root directory entries|data clusters|hidden sectors|sectors total)|First FAT starts|Root directory starts|Data area starts|\d+ sectors/track, \d+ heads|Starting (check/repair|verification) pass\.|Checking for unused clusters\.|.*: \d+ files, \d+/\d+ clusters$|$)`)
	for _, l := range strings.Split(string(out), "\n") {
		if !clean.MatchString(l) {
			t.Errorf("fsck.fat -n -v -V says %q:\n%s", l, out)
		}
	}
	if !bytes.Contains(out, []byte("16 bit entries")) {
		t.Errorf("fsck.fat: not a FAT16:\n%s", out)
	}

	// boot.sig: the image's sha256, the build's ts, verified by upstream's
	// script with the public key alone; a changed image is refused.
	s, err := eeprom.ParseSig(bi.Sig)
	if err != nil {
		t.Fatal(err)
	}
	if s.SHA256 != bi.Info.SHA256 || s.TS != epoch {
		t.Errorf("boot.sig: sha256 %s ts %d; want %s, %d", s.SHA256, s.TS, bi.Info.SHA256, epoch)
	}
	script := filepath.Join(cache.SrcDir(), "eeprom", "testdata", "rpi-eeprom-digest")
	digest := func(image string) (string, error) {
		out, err := exec.Command("sh", script, "-k", pubPath, "-i", image, "-v", sigPath).CombinedOutput()
		return string(out), err
	}
	if out, err := digest(img); err != nil || !strings.Contains(out, "Verified OK") {
		t.Errorf("rpi-eeprom-digest -k pub.pem -i boot.img -v boot.sig: %v\n%s", err, out)
	}
	changed := bytes.Clone(bi.Img)
	changed[len(changed)/2] ^= 1
	bad := filepath.Join(work, "changed.img")
	if err := os.WriteFile(bad, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := digest(bad); err == nil || !strings.Contains(out, "not verified") {
		t.Errorf("rpi-eeprom-digest -v took a changed boot.img: %v\n%s", err, out)
	}

	// Same inputs, same bytes; another epoch, another ts: line.
	again, err := builder.MakeBootImage(dir, b, nil, epoch, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Img, bi.Img) || !bytes.Equal(again.Sig, bi.Sig) {
		t.Error("boot.img or boot.sig differ between two runs on the same tree and key")
	}
	later, err := builder.MakeBootImage(dir, b, nil, epoch+86400, key)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(later.Img, bi.Img) || !bytes.Contains(later.Sig, []byte(fmt.Sprintf("\nts: %d\n", epoch+86400))) {
		t.Errorf("another SOURCE_DATE_EPOCH: the same image (%v), or boot.sig\n%s", bytes.Equal(later.Img, bi.Img), later.Sig)
	}
}
