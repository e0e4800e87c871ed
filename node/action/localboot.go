package action

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/u-root/u-root/pkg/mount"
	"github.com/u-root/u-root/pkg/mount/block"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/node/bootcfg"
	"github.com/ramboot/ramboot/node/bootfs"
	"github.com/ramboot/ramboot/node/kexec"
	"github.com/ramboot/ramboot/node/piconfig"
)

// The local boot action (option 224 "local[:TARGET]"): find the OS
// installed on the node's own disks and kexec it. A Pi boot partition is
// read as the Pi firmware reads it (config.txt, cmdline.txt); a PC's as
// its boot loader would: BLS (systemd-boot) entries, GRUB's grub.cfg,
// syslinux/extlinux (bootcfg). Every file system is mounted read-only and
// unmounted again before kexec: the disks are left as they were. A disk
// is not trusted: every name a configuration gives stays inside its
// partition and every read is bounded (bootfs), so a hostile one ends in
// the shell with the reason, never with PID 1 out of memory.

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

func (b *Boot) localBoot(ctx context.Context, spec bootspec.LocalSpec) error {
	devs, err := waitDisks(ctx, spec.Target)
	if err != nil {
		return err
	}
	var pool mount.Pool
	defer pool.UnmountAll(unix.MNT_DETACH)
	cands, notes := findInstalled(ctx, devs, &pool, piconfig.RunningModel())
	where := "the node's disks (" + devNames(devs) + ")"
	if spec.Target != "" {
		where = spec.Target
	}
	c, err := chooseInstalled(dedupe(cands), notes, where)
	if err != nil {
		return err
	}
	if err := pool.UnmountAll(unix.MNT_DETACH); err != nil {
		b.Env.Stage("local: unmount: %v", err)
	}
	return b.kexecInstalled(c)
}

// chooseInstalled is the one system found on where, or an error that
// says why there is none (notes: why a partition was passed over) or
// names the several to choose from.
func chooseInstalled(cands []localCandidate, notes []string, where string) (localCandidate, error) {
	switch len(cands) {
	case 0:
		msg := "nothing bootable on " + where + ": no Pi config.txt, GRUB, BLS or syslinux configuration with a kernel"
		if len(notes) > 0 {
			msg += "; " + strings.Join(notes, "; ")
		}
		return localCandidate{}, errors.New(msg)
	case 1:
		return cands[0], nil
	}
	var list []string
	for _, c := range cands {
		list = append(list, c.String())
	}
	return localCandidate{}, fmt.Errorf("several installed systems on %s: %s; choose one with option 224 local:/dev/NAME (or PARTUUID=...)", where, strings.Join(list, ", "))
}

// kexecInstalled boots c, its disks unmounted: a kernel of another
// architecture never reaches Env.Kexec.
func (b *Boot) kexecInstalled(c localCandidate) error {
	// The architecture check, done once: kexec gets the unpacked kernel.
	k, err := kexec.Kernel(c.kernel, runtime.GOARCH)
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	c.kernel = k
	b.Env.Stage("local: booting %s: kernel %d bytes, initramfs %d bytes, cmdline %q", c, len(c.kernel), len(c.initrd), c.cmdline)
	img := &kexec.Image{Kernel: c.kernel, Source: c.dev + ":" + c.label, Cmdline: c.cmdline}
	if len(c.initrd) > 0 {
		img.Initrds = []kexec.Initrd{{Name: "initrd", Data: c.initrd}}
	}
	if err := b.Env.Kexec(img); err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	return nil
}

// findInstalled mounts each device read-only (no device nodes, no
// set-uid, no exec) and looks for a boot configuration through bootcfg:
// names confined to the partition, every read bounded. The kernels and
// initramfses kept, all partitions together, stay within what memory
// allows (bootBudget). notes say why a device that held a configuration
// was passed over.
func findInstalled(ctx context.Context, devs block.BlockDevices, pool *mount.Pool, model piconfig.Model) (cands []localCandidate, notes []string) {
	budget := bootBudget()
	for _, d := range devs {
		if hasPartitions(d.Name) {
			continue // its partitions are in the list
		}
		mp, err := pool.Mount(d, mount.ReadOnly|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC)
		if err != nil {
			continue // no file system the kernel knows: swap, raw data, an empty partition
		}
		dev := "/dev/" + d.Name
		c, err := findOn(ctx, mp.Path, model, budget)
		switch {
		case errors.Is(err, bootcfg.ErrNone):
			continue
		case err != nil:
			notes = append(notes, fmt.Sprintf("%s: %v", dev, err))
			continue
		}
		c.dev = dev
		budget -= int64(len(c.kernel) + len(c.initrd))
		cands = append(cands, c)
	}
	return cands, notes
}

// findOn reads the boot configuration of the partition mounted at dir.
func findOn(ctx context.Context, dir string, model piconfig.Model, budget int64) (localCandidate, error) {
	p, err := bootfs.Open(dir, min(maxBootFile, budget), budget)
	if err != nil {
		return localCandidate{}, err
	}
	defer p.Close()
	b, err := bootcfg.Find(ctx, p, model)
	if err != nil {
		return localCandidate{}, err
	}
	return localCandidate{how: b.How, label: b.Label, kernel: b.Kernel, initrd: b.Initrd, cmdline: b.Cmdline}, nil
}

// bootBudget bounds the kernels and initramfses findInstalled keeps: two
// of the largest, or half of the memory available, whichever is less.
func bootBudget() int64 {
	budget := int64(2 * maxBootFile)
	if _, avail, err := memInfo(); err == nil && avail/2 < budget {
		budget = avail / 2
	}
	return budget
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
