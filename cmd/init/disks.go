package main

import (
	"context"
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

	"github.com/u-root/u-root/pkg/mount/block"

	"github.com/ramboot/ramboot/cmd/init/internal/bootspec"
)

// The node's disks: which block devices there are, which one disk=
// or local:TARGET names, and the sysfs helpers both actions use.

// diskWait is how long the local boot waits for the disk it wants (a
// USB disk can take seconds to appear).
const diskWait = 10 * time.Second

// installDisk resolves disk=: a /dev path as given, or "auto", the only
// internal disk (not removable, not empty).
func installDisk(ctx context.Context, want string) (string, error) {
	devs, err := waitDisks(ctx, "")
	if want != bootspec.DefaultDisk {
		p, err := filepath.EvalSymlinks(want)
		if err != nil {
			return "", fmt.Errorf("disk=%s: %w (the disks here: %s)", want, err, orNone(devNames(usableDisks(nil))))
		}
		return p, nil
	}
	if err != nil {
		return "", err
	}
	var disks []string
	for _, d := range devs {
		sys := filepath.Join("/sys/class/block", d.Name)
		if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
			continue
		}
		if b, _ := os.ReadFile(filepath.Join(sys, "removable")); strings.TrimSpace(string(b)) == "1" {
			continue
		}
		if b, _ := os.ReadFile(filepath.Join(sys, "size")); strings.TrimSpace(string(b)) == "0" {
			continue
		}
		disks = append(disks, "/dev/"+d.Name)
	}
	switch len(disks) {
	case 0:
		return "", fmt.Errorf("disk=auto: no internal disk (the block devices here: %s); is its driver in the board's modules?", orNone(devNames(devs)))
	case 1:
		return disks[0], nil
	}
	return "", fmt.Errorf("disk=auto: several internal disks (%s): name one with disk=/dev/NAME", strings.Join(disks, ", "))
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

func hasPartitions(name string) bool { return len(sysPartitions(name)) > 0 }

// sysPartitions lists the "partition" files (each holds its number) of
// disk name's partitions in sysfs.
func sysPartitions(name string) []string {
	m, _ := filepath.Glob(filepath.Join("/sys/class/block", name, name+"*", "partition"))
	return m
}
