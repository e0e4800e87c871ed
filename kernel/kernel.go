// Package kernel acquires what a board boots: the kernel Image, its device
// trees and modules, and firmware files, from Debian packages (fetched and
// verified by kernel/apt, read by kernel/deb) or from a directory holding a
// self-built kernel.
//
//	k, err := kernel.ExtractDeb("linux-image-6.12.117+deb13-arm64_6.12.117-1_arm64.deb", "", cacheDir)
//	if err != nil { ... }
//	if err := kernel.CheckMagic(k.Image, "arm64"); err != nil { ... }
//	tree, err := modules.Open(k.ModulesDir)
package kernel

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ramboot/ramboot/kernel/deb"
	"github.com/ramboot/ramboot/kernel/kimage"
)

// Kernel is an unpacked kernel.
type Kernel struct {
	// Release is the kernel's uname -r, e.g. 6.12.117+deb13-arm64.
	Release string
	// Root is a directory holding the package's files; DTB paths in board
	// profiles are relative to it.
	Root string
	// ImagePath is the uncompressed kernel image.
	ImagePath string
	// ModulesDir is lib/modules/<Release> (may not exist for a kernel
	// without modules).
	ModulesDir string
}

// ErrBadKernel is returned when a kernel image does not fit the board.
var ErrBadKernel = errors.New("bad kernel image")

// CheckMagic checks a kernel image against the board's Debian
// architecture before it is used: an arm64 Image has "ARM\x64" at offset
// 56; an x86 bzImage has "HdrS" at offset 0x202.
func CheckMagic(img []byte, arch string) error {
	kind := kimage.Kind(img)
	switch arch {
	case "arm64":
		switch kind {
		case kimage.ARM64:
			return nil
		case kimage.Gzip:
			return fmt.Errorf("%w: this is a gzip file, not an uncompressed arm64 Image (gunzip it first)", ErrBadKernel)
		case kimage.AMD64:
			return fmt.Errorf("%w: this is an x86 bzImage, but the board is arm64 (use an arm64 kernel package)", ErrBadKernel)
		}
		return fmt.Errorf("%w: no arm64 Image magic (\"ARM\\x64\" at offset 56): not an arm64 kernel", ErrBadKernel)
	case "amd64":
		switch kind {
		case kimage.AMD64:
			return nil
		case kimage.ARM64:
			return fmt.Errorf("%w: this is an arm64 Image, but the board is amd64 (use an amd64 kernel package)", ErrBadKernel)
		}
		return fmt.Errorf("%w: no x86 boot header (\"HdrS\" at 0x202): not an amd64 kernel", ErrBadKernel)
	}
	return fmt.Errorf("%w: no magic check for architecture %q", ErrBadKernel, arch)
}

// wanted reports whether a data.tar path is part of the kernel we keep.
func wanted(name string) bool {
	return strings.HasPrefix(name, "boot/vmlinuz-") ||
		strings.HasPrefix(name, "boot/vmlinux-") ||
		strings.HasPrefix(name, "usr/lib/linux-image-") ||
		strings.HasPrefix(name, "lib/modules/") ||
		strings.HasPrefix(name, "usr/lib/modules/")
}

// ExtractDeb unpacks a linux-image .deb into cacheDir (once per .deb
// content) and returns the kernel in it. sum is the .deb's SHA-256 when
// the caller knows it (the archive client has just verified it); "" has it
// computed.
func ExtractDeb(debPath, sum, cacheDir string) (*Kernel, error) {
	sum, err := knownSum(debPath, sum)
	if err != nil {
		return nil, fmt.Errorf("kernel package: %w", err)
	}
	root := filepath.Join(cacheDir, "extract", sum[:32])
	if _, err := os.Stat(filepath.Join(root, ".complete")); err != nil {
		if err := extract(debPath, root, wanted); err != nil {
			return nil, fmt.Errorf("kernel package %s: %w", debPath, err)
		}
	}
	return FromTree(root)
}

// ExtractFiles unpacks the named files of a .deb (paths without a leading
// "./") into a cache directory and returns that directory. sum is as for
// ExtractDeb.
func ExtractFiles(debPath, sum, cacheDir string, files []string) (string, error) {
	sum, err := knownSum(debPath, sum)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	sorted := append([]string(nil), files...)
	sort.Strings(sorted)
	fmt.Fprintf(h, "%s\n%s", sum, strings.Join(sorted, "\n"))
	root := filepath.Join(cacheDir, "extract", hex.EncodeToString(h.Sum(nil))[:32])
	if _, err := os.Stat(filepath.Join(root, ".complete")); err == nil {
		return root, nil
	}
	want := map[string]bool{}
	for _, f := range files {
		want[f] = true
	}
	if err := extract(debPath, root, func(n string) bool { return want[n] }); err != nil {
		return "", fmt.Errorf("%s: %w", debPath, err)
	}
	var missing []string
	for _, f := range files {
		p := filepath.Join(root, f)
		if _, err := os.Lstat(p); err != nil {
			missing = append(missing, f)
			continue
		}
		if _, err := os.Stat(p); err != nil {
			target, _ := os.Readlink(p)
			os.RemoveAll(root)
			return "", fmt.Errorf("%s: %s is a symlink to %s inside the package: name the link's target in the board profile", debPath, f, target)
		}
	}
	if len(missing) > 0 {
		os.RemoveAll(root)
		return "", fmt.Errorf("%s does not contain %s: check the board profile's file list against the package (dpkg-deb -c)", debPath, strings.Join(missing, ", "))
	}
	return root, nil
}

// extract unpacks the files of debPath's data.tar that keep accepts into
// root. Several builds may extract the same package at once (make test builds
// root images beside the tests): each extracts into its own temporary
// directory and renames it into place; whoever comes second finds the
// tree complete and drops its copy. root is never written in place, so a
// reader never sees it half-made.
func extract(debPath, root string, keep func(string) bool) error {
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(root), filepath.Base(root)+".tmp-")
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	err = deb.Walk(debPath, func(hdr *tar.Header, r io.Reader) error {
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if name == "" || !keep(name) {
			return nil
		}
		dst := filepath.Join(tmp, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			return os.MkdirAll(dst, 0o755)
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, r); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			return os.Symlink(hdr.Linkname, dst)
		}
		return nil
	})
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, root); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(root, ".complete")); serr == nil {
			return nil // another build got there first
		}
		return err
	}
	return nil
}

// FromTree finds the kernel in a directory laid out like a package or an
// install: boot/vmlinuz-<release> and (usr/)lib/modules/<release>.
func FromTree(root string) (*Kernel, error) {
	imgs, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(imgs) == 0 {
		imgs, _ = filepath.Glob(filepath.Join(root, "boot", "vmlinux-*"))
	}
	if len(imgs) != 1 {
		return nil, fmt.Errorf("%s: want exactly one boot/vmlinuz-<release>, found %d", root, len(imgs))
	}
	base := filepath.Base(imgs[0])
	rel := base[strings.IndexByte(base, '-')+1:]
	k := &Kernel{Release: rel, Root: root, ImagePath: imgs[0]}
	for _, d := range []string{"lib/modules", "usr/lib/modules"} {
		p := filepath.Join(root, d, rel)
		if _, err := os.Stat(p); err == nil {
			k.ModulesDir = p
			break
		}
	}
	return k, nil
}

// FromDir takes a self-built kernel: a directory with an Image (or
// arch/arm64/boot/Image, as a kernel build tree has it), a
// lib/modules/<release> tree as `make modules_install INSTALL_MOD_PATH=DIR`
// writes it, and device trees anywhere under DIR (found by file name).
func FromDir(dir string) (*Kernel, error) {
	var img string
	for _, c := range []string{"Image", "arch/arm64/boot/Image", "bzImage", "arch/x86/boot/bzImage"} {
		if _, err := os.Stat(filepath.Join(dir, c)); err == nil {
			img = filepath.Join(dir, c)
			break
		}
	}
	if img == "" {
		if k, err := FromTree(dir); err == nil {
			return k, nil
		}
		return nil, fmt.Errorf("--kernel-dir %s: no Image, arch/arm64/boot/Image or boot/vmlinuz-<release> in it", dir)
	}
	mods, _ := filepath.Glob(filepath.Join(dir, "lib", "modules", "*"))
	k := &Kernel{Root: dir, ImagePath: img}
	if len(mods) == 1 {
		k.ModulesDir = mods[0]
		k.Release = filepath.Base(mods[0])
	} else if len(mods) > 1 {
		return nil, fmt.Errorf("--kernel-dir %s: several lib/modules/<release> directories; keep only the one for this Image", dir)
	} else {
		k.Release = releaseFromImage(img)
	}
	return k, nil
}

// releaseFromImage finds "Linux version X " in an uncompressed image.
func releaseFromImage(p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		return "unknown"
	}
	i := bytes.Index(data, []byte("Linux version "))
	if i < 0 {
		return "unknown"
	}
	rest := data[i+len("Linux version "):]
	if j := bytes.IndexByte(rest, ' '); j > 0 && j < 128 {
		return string(rest[:j])
	}
	return "unknown"
}

// FindFile locates a file under root by path (with {kver} expanded) or,
// for a self-built tree, by base name anywhere below root.
func (k *Kernel) FindFile(p string) (string, error) {
	full := filepath.Join(k.Root, filepath.FromSlash(strings.ReplaceAll(p, "{kver}", k.Release)))
	if _, err := os.Stat(full); err == nil {
		return full, nil
	}
	want := path.Base(p)
	var found string
	filepath.WalkDir(k.Root, func(q string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == want && found == "" {
			found = q
		}
		return nil
	})
	if found == "" {
		return "", fmt.Errorf("kernel %s has no %s (looked for %s)", k.Release, want, full)
	}
	return found, nil
}

func knownSum(p, sum string) (string, error) {
	if sum != "" {
		return sum, nil
	}
	return FileSHA256(p)
}

// FileSHA256 is the hex SHA-256 of a file, read as a stream.
func FileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
