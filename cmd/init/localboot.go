package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/boot"
	"github.com/u-root/u-root/pkg/boot/bls"
	"github.com/u-root/u-root/pkg/boot/grub"
	"github.com/u-root/u-root/pkg/boot/syslinux"
	"github.com/u-root/u-root/pkg/mount"
	"github.com/u-root/u-root/pkg/mount/block"
	"github.com/u-root/uio/uio"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/cmd/init/internal/bootspec"
	"github.com/ramboot/ramboot/cmd/init/internal/ipxe"
	"github.com/ramboot/ramboot/cmd/init/internal/piconfig"
)

// The local boot action (option 224 "local[:TARGET]"): find the OS
// installed on the node's own disks and kexec it. A Pi boot partition is
// read as the Pi firmware reads it (config.txt, cmdline.txt); a PC's as
// its boot loader would, with u-root's parsers: BLS (systemd-boot)
// entries, GRUB's grub.cfg, syslinux/extlinux. Every file system is
// mounted read-only and unmounted again before kexec: the disks are left
// as they were.

// localCandidate is one bootable system found.
type localCandidate struct {
	dev     string // the partition, /dev/vda1
	how     string // config.txt, grub, bls, syslinux
	label   string
	kernel  []byte
	initrd  []byte
	cmdline string
}

func (c localCandidate) String() string {
	return fmt.Sprintf("%s (%s: %s)", c.dev, c.how, c.label)
}

// maxBootFile bounds a kernel or initramfs read from disk.
const maxBootFile = 512 << 20

func (in *Init) localBoot(ctx context.Context, spec bootspec.LocalSpec) error {
	devs, err := waitDisks(ctx, spec.Target)
	if err != nil {
		return err
	}
	var pool mount.Pool
	defer pool.UnmountAll(unix.MNT_DETACH)
	cands, notes := findInstalled(ctx, devs, &pool, piconfig.RunningModel())
	cands = dedupe(cands)
	where := "the node's disks (" + devNames(devs) + ")"
	if spec.Target != "" {
		where = spec.Target
	}
	switch len(cands) {
	case 0:
		msg := "nothing bootable on " + where + ": no Pi config.txt, GRUB, BLS or syslinux configuration with a kernel"
		if len(notes) > 0 {
			msg += "; " + strings.Join(notes, "; ")
		}
		return errors.New(msg)
	case 1:
	default:
		var list []string
		for _, c := range cands {
			list = append(list, c.String())
		}
		return fmt.Errorf("several installed systems on %s: %s; choose one with option 224 local:/dev/NAME (or PARTUUID=...)", where, strings.Join(list, ", "))
	}
	c := cands[0]
	if err := pool.UnmountAll(unix.MNT_DETACH); err != nil {
		in.stage("local: unmount: %v", err)
	}
	// The architecture check, done once: kexec gets the unpacked kernel.
	k, err := kernelImage(c.kernel)
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	c.kernel = k
	in.stage("local: booting %s: kernel %d bytes, initramfs %d bytes, cmdline %q", c, len(c.kernel), len(c.initrd), c.cmdline)
	plan := &ipxe.BootPlan{Kernel: c.kernel, KernelURL: c.dev + ":" + c.label, Cmdline: c.cmdline}
	if len(c.initrd) > 0 {
		plan.Initrds = []ipxe.Image{{Name: "initrd", Data: c.initrd}}
	}
	if err := in.kexec(plan); err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	return nil
}

// findInstalled mounts each device read-only and looks for a boot
// configuration. notes say why a device that held one was passed over.
func findInstalled(ctx context.Context, devs block.BlockDevices, pool *mount.Pool, model piconfig.Model) (cands []localCandidate, notes []string) {
	for _, d := range devs {
		if hasPartitions(d.Name) {
			continue // its partitions are in the list
		}
		mp, err := pool.Mount(d, mount.ReadOnly)
		if err != nil {
			continue // no file system the kernel knows: swap, raw data, an empty partition
		}
		dev := "/dev/" + d.Name
		pi, err := piconfig.Read(os.DirFS(mp.Path), model)
		switch {
		case err == nil:
			c := localCandidate{dev: dev, how: "config.txt", label: pi.Kernel, cmdline: pi.Cmdline}
			if c.kernel, err = readBootFile(filepath.Join(mp.Path, pi.Kernel)); err == nil && pi.Initrd != "" {
				c.initrd, err = readBootFile(filepath.Join(mp.Path, pi.Initrd))
			}
			if err != nil {
				notes = append(notes, fmt.Sprintf("%s: %v", dev, err))
				continue
			}
			cands = append(cands, c)
			continue
		case !errors.Is(err, piconfig.ErrNotPi):
			notes = append(notes, fmt.Sprintf("%s: %v", dev, err))
			continue
		}
		var imgs []boot.OSImage
		how := ""
		if imgs, _ = bls.ScanBLSEntries(quietLog{}, mp.Path, nil, ""); len(imgs) > 0 {
			how = "bls"
		} else if imgs, _ = grub.ParseLocalConfig(ctx, mp.Path, devs, pool); len(imgs) > 0 {
			how = "grub"
		} else if imgs, _ = syslinux.ParseLocalConfig(ctx, mp.Path); len(imgs) > 0 {
			how = "syslinux"
		}
		if len(imgs) == 0 {
			continue
		}
		// The configuration's default entry comes first.
		li, ok := imgs[0].(*boot.LinuxImage)
		if !ok {
			notes = append(notes, fmt.Sprintf("%s: %s's default entry %q is not a Linux kernel (%T): ramboot kexecs Linux only", dev, how, imgs[0].Label(), imgs[0]))
			continue
		}
		c := localCandidate{dev: dev, how: how, label: li.Label(), cmdline: li.Cmdline}
		if li.Kernel == nil {
			notes = append(notes, fmt.Sprintf("%s: %s entry %q has no kernel", dev, how, li.Label()))
			continue
		}
		if c.kernel, err = readAllAt(li.Kernel); err == nil && li.Initrd != nil {
			c.initrd, err = readAllAt(li.Initrd)
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %s entry %q: %v", dev, how, li.Label(), err))
			continue
		}
		cands = append(cands, c)
	}
	return cands, notes
}

func readBootFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBootFile+1))
	if err == nil && len(b) > maxBootFile {
		err = fmt.Errorf("%s: more than %d MB", p, maxBootFile>>20)
	}
	return b, err
}

func readAllAt(r io.ReaderAt) ([]byte, error) {
	b, err := uio.ReadAll(r)
	if err == nil && len(b) > maxBootFile {
		err = fmt.Errorf("more than %d MB", maxBootFile>>20)
	}
	return b, err
}

// dedupe drops candidates that boot the same thing: a Debian cloud
// image's EFI partition holds a grub.cfg that only points at the root
// partition's.
func dedupe(cands []localCandidate) []localCandidate {
	seen := map[[32]byte]bool{}
	var out []localCandidate
	for _, c := range cands {
		h := sha256.New()
		h.Write(c.kernel)
		h.Write([]byte{0})
		h.Write(c.initrd)
		h.Write([]byte{0})
		h.Write([]byte(c.cmdline))
		var k [32]byte
		copy(k[:], h.Sum(nil))
		if !seen[k] {
			seen[k] = true
			out = append(out, c)
		}
	}
	return out
}

// quietLog drops u-root's parser chatter.
type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Print(...any)          {}
