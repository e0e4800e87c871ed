//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// target is the device (or, for tests, an existing regular file) to write.
type target struct {
	path      string
	block     bool
	name      string // sysfs name, e.g. mmcblk0
	disk      string // for a partition: its disk, e.g. mmcblk0
	partition bool
	size      int64 // bytes; 0 if unknown (regular file)
	desc      string
	sysBlock  string
	f         *os.File
}

const listHint = "the block devices are listed in /proc/partitions (e.g. /dev/mmcblk0, /dev/sda, /dev/nvme0n1)"

// inspectTarget checks that path may be written, without opening it.
func (e *env) inspectTarget(path string) (*target, error) {
	t := &target{path: path, sysBlock: e.sysBlock}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, hint(fmt.Errorf("DEVICE %s does not exist", path), listHint)
		}
		return nil, fmt.Errorf("DEVICE %s: %v", path, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		t.block = true
	case unix.S_IFREG:
		t.desc = "regular file"
		return t, nil // for tests and for writing images to files
	case unix.S_IFDIR:
		return nil, hint(fmt.Errorf("DEVICE %s is a directory, not a block device", path), listHint)
	case unix.S_IFCHR:
		return nil, hint(fmt.Errorf("DEVICE %s is a character device, not a block device", path), listHint)
	default:
		return nil, hint(fmt.Errorf("DEVICE %s is not a block device", path), listHint)
	}

	// The sysfs name: /sys/dev/block/MAJ:MIN links to .../block/NAME.
	link, err := os.Readlink(filepath.Join(e.sysDev, fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))))
	if err == nil {
		t.name = filepath.Base(link)
	} else if real, err := filepath.EvalSymlinks(path); err == nil {
		t.name = filepath.Base(real)
	} else {
		t.name = filepath.Base(path)
	}
	info := readSysBlock(e.sysBlock, t.name)
	t.size, t.partition, t.disk, t.desc = info.size, info.partition, info.disk, info.desc

	if info.ro {
		return nil, hint(fmt.Errorf("DEVICE %s is read-only", path),
			"an SD card: slide its lock switch off; an eMMC boot partition: echo 0 > /sys/block/"+t.name+"/force_ro")
	}
	if info.known && t.size == 0 {
		return nil, hint(fmt.Errorf("DEVICE %s has size 0", path), "no medium: is the card inserted in the reader?")
	}

	devs := map[string]bool{"/dev/" + t.name: true, path: true}
	for _, p := range info.parts {
		devs["/dev/"+p] = true
	}
	resolve := func(s string) string {
		if r, err := filepath.EvalSymlinks(s); err == nil {
			return r
		}
		return s
	}
	if text, err := os.ReadFile(e.procMounts); err == nil {
		if m := mountsOf(string(text), t.name, devs, resolve); len(m) > 0 {
			return nil, hint(fmt.Errorf("DEVICE %s is in use: %s", path, strings.Join(m, "; ")),
				"unmount it first (umount "+firstField(m[0])+"), or pick another device; "+listHint)
		}
	}
	if text, err := os.ReadFile(e.procSwaps); err == nil {
		if s := swapsOf(string(text), t.name, devs, resolve); len(s) > 0 {
			return nil, hint(fmt.Errorf("DEVICE %s is in use as swap: %s", path, strings.Join(s, ", ")),
				"run swapoff "+s[0]+" first, or pick another device")
		}
	}
	return t, nil
}

func firstField(s string) string { return strings.Fields(s)[0] }

// mountsOf returns "SOURCE on MOUNTPOINT" for the lines of a
// /proc/self/mounts text whose source is the disk or one of its partitions.
// disk is the kernel name (mmcblk0); devs holds the device paths known to
// belong to it (from sysfs); names that look like its partitions count
// too, in case sysfs is not mounted.
func mountsOf(text, disk string, devs map[string]bool, resolve func(string) string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "/") {
			continue
		}
		src := unescapeMount(f[0])
		if belongs(src, disk, devs) || belongs(resolve(src), disk, devs) {
			out = append(out, src+" on "+unescapeMount(f[1]))
		}
	}
	return out
}

// swapsOf returns the swap devices of a /proc/swaps text on the disk.
func swapsOf(text, disk string, devs map[string]bool, resolve func(string) string) []string {
	var out []string
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue // header
		}
		src := unescapeMount(f[0])
		if belongs(src, disk, devs) || belongs(resolve(src), disk, devs) {
			out = append(out, src)
		}
	}
	return out
}

func belongs(dev, disk string, devs map[string]bool) bool {
	if devs[dev] {
		return true
	}
	name, ok := strings.CutPrefix(dev, "/dev/")
	return ok && isPartitionOf(name, disk)
}

// isPartitionOf: sda1 of sda, mmcblk0p1 of mmcblk0, nvme0n1p2 of nvme0n1
// (a disk whose name ends in a digit has "p" before the partition number).
func isPartitionOf(name, disk string) bool {
	rest, ok := strings.CutPrefix(name, disk)
	if !ok || disk == "" {
		return false
	}
	if last := disk[len(disk)-1]; last >= '0' && last <= '9' {
		rest, ok = strings.CutPrefix(rest, "p")
		if !ok {
			return false
		}
	}
	if rest == "" {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

// unescapeMount undoes the octal escapes (\040 for space) of /proc/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type sysInfo struct {
	known     bool // sysfs had the device
	size      int64
	ro        bool
	partition bool
	disk      string
	parts     []string
	desc      string
}

func readSysBlock(sysBlock, name string) sysInfo {
	dir := filepath.Join(sysBlock, name)
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(dir, p))
		return strings.TrimSpace(string(b))
	}
	var si sysInfo
	sectors, err := strconv.ParseInt(read("size"), 10, 64)
	if err != nil {
		si.desc = "size unknown"
		return si
	}
	si.known = true
	si.size = sectors * 512 // sysfs counts 512-byte sectors whatever the device's sector size
	si.ro = read("ro") == "1"
	diskDir := dir
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		si.partition = true
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			si.disk = filepath.Base(filepath.Dir(real))
			diskDir = filepath.Dir(real)
		}
	}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, ent := range ents {
			if _, err := os.Stat(filepath.Join(dir, ent.Name(), "partition")); err == nil {
				si.parts = append(si.parts, ent.Name())
			}
		}
		sort.Strings(si.parts)
	}

	kind := ""
	dread := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(diskDir, p))
		return strings.TrimSpace(string(b))
	}
	disk := filepath.Base(diskDir)
	switch {
	case strings.HasPrefix(disk, "mmcblk"):
		switch dread("device/type") {
		case "MMC":
			kind = "eMMC"
		case "SD":
			kind = "SD card"
		default:
			kind = "MMC/SD"
		}
	case strings.HasPrefix(disk, "nvme"):
		kind = "NVMe"
	case strings.HasPrefix(disk, "loop"):
		kind = "loop device"
	case strings.HasPrefix(disk, "ram"):
		kind = "RAM disk"
	default:
		if dread("removable") == "1" {
			kind = "removable"
		}
	}
	if model := strings.Join(strings.Fields(dread("device/vendor")+" "+dread("device/model")), " "); model != "" {
		if kind != "" {
			kind += ": "
		}
		kind += model
	}
	desc := []string{humanBytes(si.size)}
	if kind != "" {
		desc = append(desc, kind)
	}
	if si.partition {
		desc = append(desc, "a partition of /dev/"+si.disk)
	}
	si.desc = strings.Join(desc, ", ")
	return si
}

// open opens the target for writing. A block device is opened O_EXCL: the
// kernel then refuses it if it is mounted or otherwise held.
func (t *target) open() error {
	flags := os.O_WRONLY | syscall.O_CLOEXEC
	if t.block {
		flags |= syscall.O_EXCL
	} else {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(t.path, flags, 0)
	switch {
	case err == nil:
		t.f = f
		return nil
	case errors.Is(err, syscall.EBUSY):
		return hint(fmt.Errorf("%s is busy: the kernel holds it (mounted, swap, RAID or LVM member)", t.path),
			"unmount or release it first; nothing was written")
	case errors.Is(err, syscall.EROFS):
		return hint(fmt.Errorf("%s is read-only", t.path), "an SD card: slide its lock switch off")
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return hint(fmt.Errorf("open %s: permission denied", t.path), "run flash as root")
	case errors.Is(err, syscall.ENOMEDIUM) || errors.Is(err, syscall.ENXIO):
		return hint(fmt.Errorf("open %s: no medium", t.path), "is the card inserted?")
	}
	return fmt.Errorf("open %s for writing: %v", t.path, err)
}

var errTooBig = errors.New("image larger than device")

// explainWrite names a write failure.
func (t *target) explainWrite(err error, written int64) error {
	if errors.Is(err, errTooBig) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG) {
		size := ""
		if t.size > 0 {
			size = " (" + humanBytes(t.size) + ")"
		}
		return hint(fmt.Errorf("the image is larger than %s%s: it filled the device after %s; %s holds a truncated image that will not boot",
			t.path, size, humanBytes(written), t.path),
			"use a bigger device, or a smaller image")
	}
	if errors.Is(err, syscall.EIO) {
		return hint(fmt.Errorf("I/O error writing %s at byte %s", t.path, commas(written)),
			"the card or disk may be failing, or was removed; see dmesg; try another one")
	}
	return fmt.Errorf("writing %s after %s: %v", t.path, humanBytes(written), err)
}

// sync makes the data durable and, for a whole disk, makes the kernel see
// the new partitions. Only the fsync is essential.
func (t *target) sync(stderr io.Writer, full bool) error {
	if t.block {
		fmt.Fprintf(stderr, "flash: syncing %s (the kernel writes what it cached; may take a while)...\n", t.path)
	}
	if err := t.f.Sync(); err != nil {
		return hint(fmt.Errorf("fsync %s: %v", t.path, err),
			"the image may not all be on the device: flash it again; if it fails again, the device may be failing")
	}
	if !t.block || !full {
		return nil
	}
	fd := int(t.f.Fd())
	if err := unix.IoctlSetInt(fd, unix.BLKFLSBUF, 0); err != nil {
		fmt.Fprintf(stderr, "flash: warning: flushing the buffer cache of %s (BLKFLSBUF): %v\n", t.path, err)
	}
	if t.partition {
		return nil
	}
	if err := unix.IoctlSetInt(fd, unix.BLKRRPART, 0); err != nil {
		fmt.Fprintf(stderr, "flash: warning: re-reading the partition table of %s (BLKRRPART): %v; "+
			"the new partitions appear after a reboot\n", t.path, err)
		return nil
	}
	if si := readSysBlock(t.sysBlock, t.name); len(si.parts) > 0 {
		fmt.Fprintf(stderr, "flash: partitions now: /dev/%s\n", strings.Join(si.parts, " /dev/"))
	}
	return nil
}
