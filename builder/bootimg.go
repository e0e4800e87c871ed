package builder

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ramboot/ramboot/boards"
	"github.com/ramboot/ramboot/builder/fatimg"
	"github.com/ramboot/ramboot/eeprom"
	"github.com/ramboot/ramboot/tree"
)

// MaxBootImg is tree.MaxBootImg, the bootloader's ramdisk limit.
const MaxBootImg = tree.MaxBootImg

// warnBootImg is the ramdisk limit of the Pi 4 bootloaders before 2022-03-10.
const warnBootImg = 96 << 20

// ErrNoSignKey is the error for --http-boot without a key: it says how to
// make one and where its public half goes.
var ErrNoSignKey = errors.New("--http-boot signs boot.img, and no key was given: pass --sign-key KEY.pem, " +
	"an RSA-2048 private key in PEM; make one with `openssl genrsa -out boot-key.pem 2048`. " +
	"Its public half goes into the Pi's EEPROM with `ramboot eeprom --pubkey boot-key.pem`: " +
	"the bootloader fetches only a boot.img signed by the key in its EEPROM, so keep the key and sign every build with it")

// checkHTTPBoot says whether board can have a boot.img signed with key.
func checkHTTPBoot(board *boards.Board, key *rsa.PrivateKey) error {
	if !board.HTTPBoot {
		return fmt.Errorf("board %s cannot boot over HTTP (%s has no http_boot: true): --http-boot is for the EEPROM bootloaders of %s",
			board.Name, board.Source, strings.Join(boards.HTTPBootNames(), ", "))
	}
	return checkSignKey(key)
}

func checkSignKey(key *rsa.PrivateKey) error {
	if key == nil {
		return ErrNoSignKey
	}
	if _, err := eeprom.PublicKeyBin(&key.PublicKey); err != nil {
		return fmt.Errorf("--sign-key: %w", err)
	}
	return nil
}

// BootImage is a board's HTTP-boot image and its signature, made by
// MakeBootImage.
type BootImage struct {
	Img, Sig []byte
	Info     tree.BootImgInfo
}

// MakeBootImage makes boot.img and boot.sig for board b of the tree at
// root, from the files the tree holds for it (its manifest's Files: the
// firmware it needs, config.txt, kernel, device trees, overlays,
// cmdline.txt, initramfs), all at the image's root, each checked against
// the manifest's size and SHA-256. config is the board's config.txt without
// os_prefix (empty, not nil: none); nil takes the tree's, which a board of a
// mixed tree does not have (its config.txt is the tree's merged one, with
// os_prefix). boot.img
// is a FAT16 image (builder/fatimg) with every time stamp at epoch, at most
// MaxBootImg; boot.sig is eeprom.SignDigest's, ts: epoch, checked with
// eeprom.VerifySig before it is returned. Same inputs, same bytes.
//
// The builder calls it for --http-boot; a test can call it on a built tree:
//
//	t, _ := tree.Open("out/rpi4")
//	bi, err := builder.MakeBootImage(t.Root, t.Boards[0], nil, epoch, key)
//	os.WriteFile("boot.img", bi.Img, 0o644)
func MakeBootImage(root string, b tree.Board, config []byte, epoch int64, key *rsa.PrivateKey) (*BootImage, error) {
	if err := checkSignKey(key); err != nil {
		return nil, err
	}
	if config == nil && b.Dir != "" {
		return nil, fmt.Errorf("boot.img for %s: a mixed tree's config.txt is every board's, with os_prefix: pass the board's own", b.Name)
	}
	var (
		files []fatimg.File
		infos []tree.FileInfo
		total int64
	)
	seen := map[string]string{}
	add := func(name, from string, fi tree.FileInfo) error {
		if prev, ok := seen[name]; ok {
			return fmt.Errorf("boot.img for %s: %s and %s would both be %s at the image's root", b.Name, prev, from, name)
		}
		seen[name] = from
		infos = append(infos, tree.FileInfo{Name: name, Size: fi.Size, SHA256: fi.SHA256})
		total += fi.Size
		return nil
	}
	for _, f := range b.Manifest.Files {
		name := f.Name
		if b.Dir != "" {
			name = strings.TrimPrefix(name, b.Dir+"/")
		}
		if name == "config.txt" && config != nil {
			continue
		}
		if strings.HasPrefix(name, "pxelinux.cfg/") {
			continue // a PC's, never a Pi's
		}
		p := filepath.Join(root, filepath.FromSlash(f.Name))
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("boot.img for %s: %w", b.Name, err)
		}
		if st.Size() != f.Size {
			return nil, fmt.Errorf("boot.img for %s: %s is %d bytes, the manifest says %d: the tree changed after its build; rebuild it", b.Name, p, st.Size(), f.Size)
		}
		if err := add(name, f.Name, f); err != nil {
			return nil, err
		}
		files = append(files, fatimg.File{Name: name, Src: p})
	}
	if len(config) > 0 {
		if err := add("config.txt", "the board's config.txt", tree.FileInfo{Size: int64(len(config)), SHA256: sha(config)}); err != nil {
			return nil, err
		}
		files = append(files, fatimg.File{Name: "config.txt", Data: config})
	}
	tooLarge := func(err error) error {
		return fmt.Errorf("boot.img for %s: %w; the Pi bootloader's ramdisk limit is %d bytes (128 MiB): "+
			"make the initramfs smaller (fewer modules or overlays) or boot this board over TFTP (build without --http-boot)",
			b.Name, err, MaxBootImg)
	}
	if total > MaxBootImg { // before reading anything
		return nil, tooLarge(fmt.Errorf("%w: its %d files are %d bytes (%.1f MiB)", fatimg.ErrTooLarge, len(files), total, float64(total)/(1<<20)))
	}
	// Read each file once, check it against the manifest, and build from the
	// bytes checked.
	for i, f := range files {
		if f.Src == "" {
			continue
		}
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("boot.img for %s: %w", b.Name, err)
		}
		if sha(data) != infos[i].SHA256 {
			return nil, fmt.Errorf("boot.img for %s: %s differs from its manifest's sha256: the tree changed after its build; rebuild it", b.Name, f.Src)
		}
		files[i] = fatimg.File{Name: f.Name, Data: data}
	}
	img, err := fatimg.Build(files, fatimg.Options{Label: "BOOT", ModTime: time.Unix(epoch, 0).UTC(), MaxSize: MaxBootImg})
	if errors.Is(err, fatimg.ErrTooLarge) {
		return nil, tooLarge(err)
	}
	if err != nil {
		return nil, fmt.Errorf("boot.img for %s: %w", b.Name, err)
	}
	sig, err := eeprom.SignDigest(img, epoch, key)
	if err != nil {
		return nil, fmt.Errorf("boot.sig for %s: %w", b.Name, err)
	}
	if err := eeprom.VerifySig(img, sig, &key.PublicKey); err != nil {
		return nil, fmt.Errorf("boot.sig for %s does not verify (a bug): %w", b.Name, err)
	}
	bin, _ := eeprom.PublicKeyBin(&key.PublicKey) // checked by checkSignKey
	slices.SortFunc(infos, func(a, b tree.FileInfo) int { return strings.Compare(a.Name, b.Name) })
	return &BootImage{Img: img, Sig: sig, Info: tree.BootImgInfo{
		Name: b.Path(tree.BootImgName), Size: int64(len(img)), SHA256: sha(img),
		Sig: tree.FileInfo{Name: b.Path(tree.BootSigName), Size: int64(len(sig)), SHA256: sha(sig)},
		TS:  epoch, KeySHA256: sha(bin), Files: infos,
	}}, nil
}

// Write writes boot.img and boot.sig into the tree at root, at their
// Info names, through tree.WriteFile: the signature first, so that once
// the image is in place its signature is too.
func (bi *BootImage) Write(root string) error {
	for _, f := range []struct {
		name string
		data []byte
	}{{bi.Info.Sig.Name, bi.Sig}, {bi.Info.Name, bi.Img}} {
		p := filepath.Join(root, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := tree.WriteFile(p, f.data); err != nil {
			return err
		}
	}
	return nil
}

// bootImg is the boot.img stage: with HTTPBoot, boot.img and boot.sig
// beside the board's files, from what write put in the tree.
func (b *Build) bootImg(ctx context.Context) error {
	if !b.HTTPBoot {
		return nil
	}
	var config []byte // one-board tree: its config.txt, as written
	if b.Subdir != "" {
		config = []byte(b.bootConfig) // not the tree's, which has os_prefix
	}
	bd := tree.Board{Name: b.Board.Name, Dir: b.Subdir, Arch: b.Board.Arch, Kernel: b.Board.Kernel.ImageName(), Manifest: b.Manifest}
	bi, err := MakeBootImage(b.Out, bd, config, b.SourceDateEpoch, b.SignKey)
	if err != nil {
		return err
	}
	if err := bi.Write(b.Out); err != nil {
		return err
	}
	b.Manifest.BootImg = &bi.Info
	b.logf("http boot: %s %.1f MB (%d files), %s signed by the key with pubkey.bin sha256 %s",
		bi.Info.Name, float64(bi.Info.Size)/1e6, len(bi.Info.Files), bi.Info.Sig.Name, bi.Info.KeySHA256[:16])
	if bi.Info.Size > warnBootImg {
		b.logf("warning: boot.img is over 96 MiB, the limit of Pi 4 bootloaders before 2022-03-10: update the EEPROM")
	}
	return nil
}
