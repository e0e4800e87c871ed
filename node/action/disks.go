package action

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

	"github.com/ramboot/ramboot/bootspec"
)

// The node's disks: which block devices there are, which one disk=
// or local:TARGET names, and the sysfs helpers both actions use.

// diskWait is how long the local boot waits for the disk it wants (a
// USB disk can take seconds to appear).
const diskWait = 10 * time.Second

// How disk=auto waits for the disks: NVMe, SCSI, SATA and USB disks are
// probed after their drivers load, one by one, for seconds. The disks are
// taken once no new one appeared for settleQuiet, and after settleMax at
// the latest.
const (
	settleQuiet = 3 * time.Second
	settleMax   = 30 * time.Second
)

// nodeSys is the node's sysfs; tests use a fake tree.
const nodeSys sysfs = "/sys"

// installDisk resolves disk=: auto, the only internal disk once the
// disks have settled; /dev/disk/by-id/ID, resolved from sysfs (there is
// no udev); or a /dev path as given.
func installDisk(ctx context.Context, want string) (string, error) {
	return chooseDisk(ctx, nodeSys, want, settleQuiet, settleMax)
}

func chooseDisk(ctx context.Context, sys sysfs, want string, quiet, max time.Duration) (string, error) {
	if want != bootspec.DefaultDisk {
		return sys.waitNamed(ctx, want, diskWait)
	}
	names, err := sys.settle(ctx, quiet, max)
	if err != nil {
		return "", err
	}
	var disks, passed []string
	for _, n := range names {
		if why := sys.notAuto(n); why != "" {
			passed = append(passed, "/dev/"+n+": "+why)
			continue
		}
		disks = append(disks, "/dev/"+n)
	}
	over := ""
	if len(passed) > 0 {
		over = "; passed over: " + strings.Join(passed, ", ")
	}
	switch len(disks) {
	case 0:
		return "", fmt.Errorf("disk=auto: no internal disk (the disks here: %s%s); is its driver in the board's modules? A removable or USB disk is written only when named: disk=/dev/NAME or disk=/dev/disk/by-id/ID", orNone(devList(names)), over)
	case 1:
		return disks[0], nil
	}
	return "", fmt.Errorf("disk=auto: several internal disks (%s): name one with disk=/dev/NAME or disk=/dev/disk/by-id/ID%s%s", strings.Join(disks, ", "), sys.idHint(disks), over)
}

// waitNamed waits up to wait for a named disk: /dev/disk/by-id/ID or a
// /dev path.
func (sys sysfs) waitNamed(ctx context.Context, want string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		var err error
		if id, ok := strings.CutPrefix(want, byIDDir); ok {
			name, rerr := sys.resolveID(id)
			if rerr != nil {
				return "", fmt.Errorf("disk=%s: %w", want, rerr)
			}
			if name != "" {
				return "/dev/" + name, nil
			}
			err = fmt.Errorf("no disk has the id %s (the ids here, from sysfs: %s)", id, orNone(strings.Join(sys.idList(), " ")))
		} else {
			var p string
			if p, err = filepath.EvalSymlinks(want); err == nil {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("disk=%s: %w (the disks here: %s)", want, err, orNone(devList(sys.wholeDisks())))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func devList(names []string) string {
	var n []string
	for _, d := range names {
		n = append(n, "/dev/"+d)
	}
	return strings.Join(n, " ")
}

// sysfs is a sysfs mount: the kernel's view of the block devices.
type sysfs string

func (sys sysfs) block(name string, elem ...string) string {
	return filepath.Join(append([]string{string(sys), "class", "block", name}, elem...)...)
}

// attr reads one attribute, trailing white space cut (as udev does).
func (sys sysfs) attr(name string, elem ...string) string {
	b, err := os.ReadFile(sys.block(name, elem...))
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), " \t\n\r\x00")
}

// wholeDisks lists the whole disks (no partitions; no loop, RAM, optical
// or MTD devices), sorted.
func (sys sysfs) wholeDisks() []string {
	ents, _ := os.ReadDir(filepath.Join(string(sys), "class", "block"))
	var out []string
	for _, e := range ents {
		n := e.Name()
		if skipDisk.MatchString(n) || strings.HasPrefix(n, "mtdblock") {
			continue
		}
		if _, err := os.Stat(sys.block(n, "partition")); err == nil {
			continue
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// settle waits until no new disk has appeared for quiet (and at least one
// is there), or max has passed, and returns the disks.
func (sys sysfs) settle(ctx context.Context, quiet, max time.Duration) ([]string, error) {
	start := time.Now()
	last := start
	seen := map[string]bool{}
	poll := quiet / 8
	if poll > 250*time.Millisecond {
		poll = 250 * time.Millisecond
	}
	for {
		names := sys.wholeDisks()
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				last = time.Now()
			}
		}
		now := time.Now()
		if len(names) > 0 && now.Sub(last) >= quiet || now.Sub(start) >= max {
			return names, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

var (
	emmcBoot = regexp.MustCompile(`^mmcblk\d+boot\d+$`)
	emmcRPMB = regexp.MustCompile(`^mmcblk\d+rpmb$`)
	usbBus   = regexp.MustCompile(`^usb\d+$`)
)

// notAuto says why disk=auto does not take a whole disk, or "".
func (sys sysfs) notAuto(name string) string {
	switch {
	case emmcBoot.MatchString(name):
		return "an eMMC boot area"
	case emmcRPMB.MatchString(name):
		return "an eMMC RPMB area"
	case sys.attr(name, "size") == "0":
		return "empty (no medium)"
	case sys.attr(name, "removable") == "1":
		return "removable"
	case sys.onUSB(name):
		return "on USB"
	}
	return ""
}

// onUSB says whether the disk's device path in /sys/devices passes a
// USB bus.
func (sys sysfs) onUSB(name string) bool {
	p, err := filepath.EvalSymlinks(sys.block(name))
	if err != nil {
		return false
	}
	for _, el := range strings.Split(filepath.ToSlash(p), "/") {
		if usbBus.MatchString(el) {
			return true
		}
	}
	return false
}

// byIDDir is where udev would make the by-id links.
const byIDDir = "/dev/disk/by-id/"

// idOwners gives each disk and partition the /dev/disk/by-id names udev's
// 60-persistent-storage.rules would, from sysfs (the init has no udev):
//
//	nvme-MODEL_SERIAL, nvme-MODEL_SERIAL_NSID, nvme-WWID   NVMe (model, serial, wwid, nsid)
//	ata-MODEL_SERIAL                                     SATA (ATA IDENTIFY data in device/vpd_pg89)
//	wwn-0xNAA, scsi-3NAA                                 SATA and SCSI with an NAA device/wwid
//	virtio-SERIAL                                        virtio (serial)
//	mmc-NAME_SERIAL                                      SD and eMMC (device/name, device/serial)
//
// and a partition, its disk's names with -partN; it maps each name to the
// devices that have it: two can share one (a multi-namespace NVMe drive's
// nvme-MODEL_SERIAL, cloned virtio serials). USB disks' usb-... names
// come from USB descriptors udev reads, which are not resolved here.
func (sys sysfs) idOwners() map[string][]string {
	out := map[string][]string{}
	for _, disk := range sys.wholeDisks() {
		names := sys.diskIDs(disk)
		for _, id := range names {
			out[id] = append(out[id], disk)
		}
		if len(names) == 0 {
			continue
		}
		for _, p := range sysPartitionsIn(sys, disk) {
			part := filepath.Base(filepath.Dir(p))
			n := sys.attr(part, "partition")
			if n == "" {
				n = sys.attr(disk, part, "partition")
			}
			for _, id := range names {
				out[id+"-part"+n] = append(out[id+"-part"+n], part)
			}
		}
	}
	return out
}

// ids maps each by-id name to its device.
func (sys sysfs) ids() map[string]string {
	out := map[string]string{}
	for id, devs := range sys.idOwners() {
		out[id] = devs[0]
	}
	return out
}

// resolveID is the device with by-id name id ("" if none has it); an id
// that several devices share is an error naming them: writing whichever
// sorts last is not what the operator asked for.
func (sys sysfs) resolveID(id string) (string, error) {
	devs := sys.idOwners()[id]
	if len(devs) > 1 {
		return "", fmt.Errorf("%s%s names %d devices (%s): name one by another id or as /dev/NAME", byIDDir, id, len(devs), "/dev/"+strings.Join(devs, ", /dev/"))
	}
	if len(devs) == 0 {
		return "", nil
	}
	return devs[0], nil
}

// idList lists the whole disks' ids, sorted.
func (sys sysfs) idList() []string {
	var out []string
	for id := range sys.ids() {
		if !strings.Contains(id, "-part") {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// idHint names the disks' ids, for an error that asks to name one.
func (sys sysfs) idHint(disks []string) string {
	var hints []string
	for _, d := range disks {
		if ids := sys.diskIDs(strings.TrimPrefix(d, "/dev/")); len(ids) > 0 {
			hints = append(hints, d+" is "+byIDDir+ids[0])
		}
	}
	if len(hints) == 0 {
		return ""
	}
	return " (" + strings.Join(hints, ", ") + ")"
}

func sysPartitionsIn(sys sysfs, name string) []string {
	m, _ := filepath.Glob(filepath.Join(sys.block(name), name+"*", "partition"))
	return m
}

var nvmeDisk = regexp.MustCompile(`^nvme\d+n\d+$`)

// diskIDs are a whole disk's by-id names, udev's preferred one first.
func (sys sysfs) diskIDs(disk string) []string {
	var out []string
	add := func(s string) {
		if s = udevName(s); s != "" {
			out = append(out, s)
		}
	}
	switch {
	case nvmeDisk.MatchString(disk):
		model, serial := sys.attr(disk, "device", "model"), sys.attr(disk, "device", "serial")
		if model == "" {
			model = sys.attr(disk, "model")
		}
		if serial == "" {
			serial = sys.attr(disk, "serial")
		}
		if model != "" && serial != "" {
			add("nvme-" + model + "_" + serial)
			if nsid := sys.attr(disk, "nsid"); nsid != "" {
				add("nvme-" + model + "_" + serial + "_" + nsid)
			}
		}
		if w := sys.attr(disk, "wwid"); w != "" {
			add("nvme-" + w)
		}
	case strings.HasPrefix(disk, "vd"):
		if s := sys.attr(disk, "serial"); s != "" {
			add("virtio-" + s)
		}
	case strings.HasPrefix(disk, "mmcblk") && !emmcBoot.MatchString(disk) && !emmcRPMB.MatchString(disk):
		name, serial := sys.attr(disk, "device", "name"), sys.attr(disk, "device", "serial")
		if name != "" && serial != "" {
			add("mmc-" + name + "_" + serial)
		}
	case strings.HasPrefix(disk, "sd"):
		ata := strings.TrimSpace(sys.attr(disk, "device", "vendor")) == "ATA"
		if ata {
			if model, serial, ok := ataIdentify(sys.block(disk, "device", "vpd_pg89")); ok {
				add("ata-" + model + "_" + serial)
			}
		}
		if w, ok := strings.CutPrefix(sys.attr(disk, "device", "wwid"), "naa."); ok && w != "" {
			add("wwn-0x" + strings.ToLower(w))
			if !ata {
				add("scsi-3" + strings.ToLower(w))
			}
		}
	}
	return out
}

// ataIdentify reads the model and serial number from the ATA IDENTIFY
// DEVICE data in an ATA Information VPD page (89h): the data starts at
// byte 60; the serial is words 10-19, the model words 27-46, each word's
// bytes swapped.
func ataIdentify(p string) (model, serial string, ok bool) {
	b, err := os.ReadFile(p)
	if err != nil || len(b) < 60+512 || b[1] != 0x89 {
		return "", "", false
	}
	id := b[60 : 60+512]
	str := func(from, to int) string {
		s := make([]byte, 0, (to-from)*2)
		for w := from; w < to; w++ {
			s = append(s, id[2*w+1], id[2*w])
		}
		return udevName(string(s))
	}
	model, serial = str(27, 47), str(10, 20)
	return model, serial, model != "" && serial != ""
}

// udevName is a name as udev writes it into a link with
// string_escape=replace: white space cut at both ends, each run of it
// inside one _, characters outside udev's safe set (letters, digits,
// #+-.:=@_ and UTF-8) a _.
func udevName(s string) string {
	s = strings.Trim(s, " \t\n\r\v\f")
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case strings.ContainsRune(" \t\n\r\v\f", r):
			space = true
			continue
		case space:
			b.WriteByte('_')
			space = false
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("#+-.:=@_", r), r >= 0x80 && r != 0xfffd:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
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
					if strings.HasPrefix(target, byIDDir) {
						err = fmt.Errorf("%w (the disk ids here, from sysfs: %s)", err, orNone(strings.Join(nodeSys.idList(), " ")))
					}
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
		var name string
		if id, ok := strings.CutPrefix(target, byIDDir); ok {
			// No udev here: the id is resolved from sysfs, and waitDisks
			// waits for a disk that has it.
			var err error
			if name, err = nodeSys.resolveID(id); err != nil || name == "" {
				return nil, err
			}
		} else if strings.HasPrefix(target, "/dev/disk/") {
			return nil, fmt.Errorf("%s: there is no udev in ramboot's init to make /dev/disk links: name the disk /dev/NAME or /dev/disk/by-id/ID, or the partition PARTUUID=, UUID= or LABEL=", target)
		} else {
			p, err := filepath.EvalSymlinks(target)
			if err != nil {
				return nil, nil
			}
			name = filepath.Base(p)
		}
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
