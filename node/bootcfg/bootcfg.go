// Package bootcfg finds what the boot loader installed on one partition
// would start, and reads it: a Raspberry Pi's config.txt (piconfig),
// systemd-boot's BLS entries, GRUB's grub.cfg, syslinux/extlinux (u-root's
// parsers for the last two). Every file goes through bootfs: names stay
// inside the partition, reads are bounded while they happen,
// configuration files are bounded in number.
//
// GRUB's "search" is not followed (a configuration names files on its
// own partition) and its "blscfg" is left to the BLS pass, which looks
// at every partition.
//
//	p, _ := bootfs.Open(mountPoint, 512<<20, 1<<30)
//	defer p.Close()
//	b, err := bootcfg.Find(ctx, p, piconfig.RunningModel())
//	if errors.Is(err, bootcfg.ErrNone) { /* not a boot partition */ }
package bootcfg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sync"

	"github.com/u-root/u-root/pkg/boot"
	"github.com/u-root/u-root/pkg/boot/grub"
	"github.com/u-root/u-root/pkg/boot/syslinux"
	"github.com/u-root/u-root/pkg/curl"
	"github.com/u-root/u-root/pkg/mount"

	"github.com/ramboot/ramboot/node/bootfs"
	"github.com/ramboot/ramboot/node/piconfig"
)

// Boot is one bootable system found on a partition.
type Boot struct {
	How     string // config.txt, bls, grub, syslinux
	Label   string
	Kernel  []byte
	Initrd  []byte
	Cmdline string
}

// ErrNone says the partition has no boot configuration.
var ErrNone = errors.New("no boot configuration")

// ErrParserPanic says a u-root parser panicked on the partition's
// configuration (a bug the fuzz targets look for).
var ErrParserPanic = errors.New("the parser panicked")

// Find reads the partition's boot configuration and the kernel and
// initramfs of its default entry. An error other than ErrNone says why a
// partition that has a configuration cannot be booted.
func Find(ctx context.Context, p *bootfs.Partition, model piconfig.Model) (*Boot, error) {
	p.StartParse()
	pi, err := piconfig.Read(p.FS(), model)
	switch {
	case err == nil:
		p.EndParse()
		b := &Boot{How: "config.txt", Label: pi.Kernel, Cmdline: pi.Cmdline}
		if b.Kernel, err = p.ReadFile(pi.Kernel); err == nil && pi.Initrd != "" {
			b.Initrd, err = p.ReadFile(pi.Initrd)
		}
		if err != nil {
			return nil, fmt.Errorf("config.txt: %w", err)
		}
		return b, nil
	case !errors.Is(err, piconfig.ErrNotPi):
		if r := p.Refused(); r != nil {
			return nil, fmt.Errorf("%v: %w", err, r)
		}
		return nil, err
	}

	p.StartParse()
	e, err := FindBLS(p)
	switch {
	case err == nil:
		p.EndParse()
		b := &Boot{How: "bls", Label: e.Label(), Cmdline: e.Options}
		if b.Kernel, err = p.ReadFile(e.Linux); err == nil {
			b.Initrd, err = readInitrds(p, e.Initrd)
		}
		if err != nil {
			return nil, fmt.Errorf("bls entry %s: %w", e.ID, err)
		}
		return b, nil
	case !errors.Is(err, ErrNone):
		return nil, fmt.Errorf("bls: %w", err)
	}

	// syslinux's parser joins an entry's initrds in a temporary file
	// (boot.CatInitrdsWithFileCache) and leaves it: in the init's RAM.
	defer removeCombinedInitrds()
	for _, how := range []string{"grub", "syslinux"} {
		p.StartParse()
		var imgs []boot.OSImage
		if how == "grub" {
			imgs, err = parseGrub(ctx, p)
		} else {
			imgs, err = parseSyslinux(ctx, p)
		}
		if r := p.Refused(); r != nil {
			return nil, fmt.Errorf("%s: %w", how, r)
		}
		if errors.Is(err, ErrNone) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", how, unwrapURL(err))
		}
		if len(imgs) == 0 {
			continue
		}
		p.EndParse()
		// The configuration's default entry comes first.
		li, ok := imgs[0].(*boot.LinuxImage)
		if !ok {
			return nil, fmt.Errorf("%s's default entry %q is not a Linux kernel (%T): ramboot kexecs Linux only", how, imgs[0].Label(), imgs[0])
		}
		if li.Kernel == nil {
			return nil, fmt.Errorf("%s entry %q has no kernel", how, li.Label())
		}
		b := &Boot{How: how, Label: li.Label(), Cmdline: li.Cmdline}
		if b.Kernel, err = readAllAt(li.Kernel, p.MaxFile); err == nil && li.Initrd != nil {
			b.Initrd, err = readAllAt(li.Initrd, p.MaxFile)
		}
		if err != nil {
			return nil, fmt.Errorf("%s entry %q: %w", how, li.Label(), unwrapURL(err))
		}
		return b, nil
	}
	return nil, ErrNone
}

// readInitrds reads a BLS entry's initrds and joins them as the kernel
// takes several: each but the last padded to 512 bytes.
func readInitrds(p *bootfs.Partition, names []string) ([]byte, error) {
	var out []byte
	for i, n := range names {
		b, err := p.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		if i < len(names)-1 && len(out)%512 != 0 {
			out = append(out, make([]byte, 512-len(out)%512)...)
		}
	}
	return out, nil
}

// readAllAt reads what a u-root parser handed over, failing once more
// than max bytes came (the bootfs scheme already bounds each file; this
// bounds what u-root joins, syslinux's initrd list).
func readAllAt(r io.ReaderAt, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(r, 0, max+1), max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d MB", bootfs.ErrTooLarge, max>>20)
	}
	return b, nil
}

// removeCombinedInitrds removes the files boot.CatInitrdsWithFileCache
// made (os.CreateTemp("", "combined-initrd")).
func removeCombinedInitrds() {
	m, _ := filepath.Glob(filepath.Join(os.TempDir(), "combined-initrd*"))
	for _, f := range m {
		os.Remove(f)
	}
}

// unwrapURL drops curl's "encountered error ... with URL" wrapping: the
// bootfs error names the file already.
func unwrapURL(err error) error {
	var ue *curl.URLError
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// logMu serializes the parsers' quiet spells: u-root's parsers print
// every configuration they read with the log package, which would put a
// hostile disk's 256 KB configurations on the console.
var logMu sync.Mutex

// quietly runs a u-root parser with the log silenced, and turns a panic
// of the parser into an error: PID 1 must not die of a disk's bytes.
func quietly[T any](f func() (T, error)) (_ T, err error) {
	logMu.Lock()
	defer logMu.Unlock()
	w := log.Writer()
	log.SetOutput(io.Discard)
	defer log.SetOutput(w)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrParserPanic, r)
		}
	}()
	return f()
}

var grubFiles = []string{"boot/grub/grub.cfg", "grub/grub.cfg", "grub2/grub.cfg", "boot/grub2/grub.cfg"}

// parseGrub parses the first grub.cfg found as u-root's
// grub.ParseLocalConfig would, through the partition's scheme, with no
// devices to search and an empty mount pool (no blscfg scan).
func parseGrub(ctx context.Context, p *bootfs.Partition) ([]boot.OSImage, error) {
	var names []string
	if dirs, err := p.ReadDir("EFI"); err == nil {
		for _, d := range dirs {
			names = append(names, path.Join("EFI", d, "grub.cfg"))
		}
	}
	names = append(names, grubFiles...)
	root := &url.URL{Scheme: "file", Path: p.Dir}
	for _, n := range names {
		if !p.Exists(n) {
			if r := p.Refused(); r != nil {
				return nil, r
			}
			continue
		}
		imgs, err := quietly(func() ([]boot.OSImage, error) {
			return grub.ParseConfigFile(ctx, p.Schemes(), n, root, nil, &mount.Pool{})
		})
		// As grub.ParseLocalConfig: a file that is not there (a
		// configfile on another partition) means the next one.
		if errors.Is(err, fs.ErrNotExist) && p.Refused() == nil {
			continue
		}
		return imgs, err
	}
	return nil, ErrNone
}

// syslinuxFiles is syslinux's search order (u-root's probeIsolinuxFiles).
func syslinuxFiles() []string {
	var out []string
	for _, dir := range []string{"boot/isolinux", "isolinux", "boot/syslinux", "extlinux", "syslinux", ""} {
		for _, conf := range []string{"isolinux.cfg", "extlinux.conf", "syslinux.cfg"} {
			out = append(out, path.Join(dir, conf))
		}
	}
	return out
}

func parseSyslinux(ctx context.Context, p *bootfs.Partition) ([]boot.OSImage, error) {
	root := &url.URL{Scheme: "file", Path: p.Dir}
	for _, n := range syslinuxFiles() {
		if !p.Exists(n) {
			if r := p.Refused(); r != nil {
				return nil, r
			}
			continue
		}
		dir, name := path.Split(n)
		// The working directory is the configuration's.
		imgs, err := quietly(func() ([]boot.OSImage, error) {
			return syslinux.ParseConfigFile(ctx, p.Schemes(), name, root, dir)
		})
		if errors.Is(err, fs.ErrNotExist) && p.Refused() == nil {
			continue
		}
		return imgs, err
	}
	return nil, ErrNone
}
