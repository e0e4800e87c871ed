package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

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

// diskWait is how long the local boot waits for the disk it wants (a
// USB disk can take seconds to appear).
const diskWait = 10 * time.Second

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

// waitDisks returns the block devices to search (partitions and whole
// disks, never loop, RAM or optical devices), waiting up to diskWait for
// a named target to appear.
func waitDisks(ctx context.Context, target string) (block.BlockDevices, error) {
	deadline := time.Now().Add(diskWait)
	for {
		all, err := block.GetBlockDevices()
		if err != nil {
			return nil, fmt.Errorf("listing block devices: %w", err)
		}
		devs := usableDisks(all)
		if target == "" && len(devs) > 0 {
			return devs, nil
		}
		if target != "" {
			m, err := matchTarget(devs, target)
			if err == nil && len(m) > 0 {
				return m, nil
			}
			if time.Now().After(deadline) {
				if err == nil {
					err = fmt.Errorf("no disk or partition %s among %s", target, orNone(devNames(devs)))
				}
				return nil, err
			}
		} else if time.Now().After(deadline) {
			return nil, errors.New("no disks: no SD card, eMMC, USB, SATA, NVMe or virtio disk was found (is its driver in the board's modules?)")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

var skipDisk = regexp.MustCompile(`^(loop|ram|zram|sr|fd|nbd|dm-|md)\d*`)

func usableDisks(all block.BlockDevices) block.BlockDevices {
	var out block.BlockDevices
	for _, d := range all {
		if skipDisk.MatchString(d.Name) || strings.HasPrefix(d.Name, "mtdblock") {
			continue
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func devNames(devs block.BlockDevices) string {
	var n []string
	for _, d := range devs {
		n = append(n, "/dev/"+d.Name)
	}
	return strings.Join(n, " ")
}

var mbrPartUUID = regexp.MustCompile(`^([0-9a-fA-F]{8})-([0-9]{2})$`)

// matchTarget narrows devs to a target: a disk (with its partitions), a
// partition, PARTUUID=, UUID= or LABEL= (a file system label).
func matchTarget(devs block.BlockDevices, target string) (block.BlockDevices, error) {
	switch {
	case strings.HasPrefix(target, "/dev/"):
		p, err := filepath.EvalSymlinks(target)
		if err != nil {
			if strings.HasPrefix(target, "/dev/disk/") {
				return nil, fmt.Errorf("%s: %w (there is no udev in ramboot's init to make /dev/disk links: name the disk /dev/NAME, or the partition PARTUUID=, UUID= or LABEL=)", target, err)
			}
			return nil, nil
		}
		name := filepath.Base(p)
		var out block.BlockDevices
		for _, d := range devs {
			if d.Name == name || isPartitionOf(d.Name, name) {
				out = append(out, d)
			}
		}
		return out, nil
	case strings.HasPrefix(target, "PARTUUID="):
		v := strings.TrimPrefix(target, "PARTUUID=")
		if m := mbrPartUUID.FindStringSubmatch(v); m != nil {
			sig, _ := strconv.ParseUint(m[1], 16, 32)
			n, _ := strconv.Atoi(m[2])
			var out block.BlockDevices
			for _, disk := range devs.FilterMBRSig(uint32(sig)) {
				want := block.ComposePartName(disk.Name, n)
				for _, d := range devs {
					if d.Name == want {
						out = append(out, d)
					}
				}
			}
			return out, nil
		}
		return devs.FilterPartID(v), nil
	case strings.HasPrefix(target, "UUID="):
		return devs.FilterFSUUID(strings.TrimPrefix(target, "UUID=")), nil
	case strings.HasPrefix(target, "LABEL="):
		want := strings.TrimPrefix(target, "LABEL=")
		var out block.BlockDevices
		for _, d := range devs {
			if l, ok := fsLabel("/dev/" + d.Name); ok && l == want {
				out = append(out, d)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("local:%s: not a disk or partition name", target)
}

// isPartitionOf says whether part is a partition of disk: sysfs lists a
// disk's partitions as its subdirectories.
func isPartitionOf(part, disk string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/block", disk, part, "partition"))
	return err == nil
}

// fsLabel reads an ext2/3/4 or FAT file system's label.
func fsLabel(dev string) (string, bool) {
	f, err := os.Open(dev)
	if err != nil {
		return "", false
	}
	defer f.Close()
	b := make([]byte, 2048)
	if _, err := io.ReadFull(f, b); err != nil {
		return "", false
	}
	if b[1024+56] == 0x53 && b[1024+57] == 0xef { // ext magic
		return strings.TrimRight(string(b[1024+120:1024+136]), "\x00"), true
	}
	if b[510] == 0x55 && b[511] == 0xaa {
		switch {
		case string(b[82:87]) == "FAT32":
			return strings.TrimSpace(string(b[71:82])), true
		case string(b[54:59]) == "FAT16" || string(b[54:59]) == "FAT12":
			return strings.TrimSpace(string(b[43:54])), true
		}
	}
	return "", false
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

func hasPartitions(name string) bool { return len(sysPartitions(name)) > 0 }

// sysPartitions lists the "partition" files (each holds its number) of
// disk name's partitions in sysfs.
func sysPartitions(name string) []string {
	m, _ := filepath.Glob(filepath.Join("/sys/class/block", name, name+"*", "partition"))
	return m
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
