// Package facts reads what a node's hardware is, from the kernel's own
// files (/proc, /sys, the device tree), for the init to report once per
// boot (internal/report.Facts): board model and revision, serial, CPU,
// memory, disks, NICs, a Pi bootloader's version, the temperature. It
// reads under a root directory, so tests give it a fake one. Every file
// is read with a bound; a missing one leaves its fact empty.
package facts

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ramboot/ramboot/internal/report"
)

// Gather reads the facts under root ("/" on a node) for the node whose
// MAC is mac.
func Gather(root, mac string) report.Facts {
	r := reader{root}
	f := report.Facts{MAC: mac, Disks: []report.Disk{}, NICs: []report.NIC{}}
	if m := r.text("proc/device-tree/model"); m != "" {
		f.Model = m
		if b := r.bytes("proc/device-tree/system/linux,revision"); len(b) == 4 {
			f.Revision = fmt.Sprintf("%x", binary.BigEndian.Uint32(b))
		}
		f.Serial = strings.TrimLeft(r.text("proc/device-tree/serial-number"), "0")
	} else {
		f.Model = strings.TrimSpace(r.text("sys/class/dmi/id/sys_vendor") + " " + r.text("sys/class/dmi/id/product_name"))
		f.Revision = r.text("sys/class/dmi/id/product_version")
		f.Serial = r.text("sys/class/dmi/id/product_serial")
	}
	f.CPU, f.Cores = r.cpu()
	f.MemoryBytes = r.memTotal()
	f.Disks = r.disks()
	f.NICs = r.nics()
	f.Bootloader = r.bootloader()
	if t, err := strconv.Atoi(r.text("sys/class/thermal/thermal_zone0/temp")); err == nil {
		f.TempMilliC = t
	}
	clip := func(s *string) { *s = report.Clip(strings.ToValidUTF8(*s, "?"), report.MaxFactsText) }
	for _, s := range []*string{&f.Model, &f.Revision, &f.Serial, &f.CPU, &f.Bootloader} {
		clip(s)
	}
	for i := range f.Disks {
		clip(&f.Disks[i].Model)
		clip(&f.Disks[i].Serial)
	}
	return f
}

type reader struct{ root string }

const maxFile = 64 << 10

func (r reader) bytes(p string) []byte {
	f, err := os.Open(filepath.Join(r.root, p))
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, maxFile))
	return b
}

func (r reader) text(p string) string {
	return strings.TrimSpace(strings.TrimRight(string(r.bytes(p)), "\x00"))
}

// cpu is the CPU's name and the number of processors in /proc/cpuinfo;
// on arm64, which names no model there, the device tree's first CPU's
// compatible ("arm,cortex-a72").
func (r reader) cpu() (string, int) {
	var name string
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(r.bytes("proc/cpuinfo")))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			n++
		case "model name":
			if name == "" {
				name = strings.TrimSpace(v)
			}
		}
	}
	if name == "" {
		if ms, _ := filepath.Glob(filepath.Join(r.root, "proc/device-tree/cpus/cpu@*/compatible")); len(ms) > 0 {
			sort.Strings(ms)
			rel, _ := filepath.Rel(r.root, ms[0])
			name, _, _ = strings.Cut(string(r.bytes(rel)), "\x00")
		}
	}
	return name, n
}

func (r reader) memTotal() int64 {
	sc := bufio.NewScanner(bytes.NewReader(r.bytes("proc/meminfo")))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// disks are /sys/block's devices but loop, RAM, zram and device-mapper
// ones, by name.
func (r reader) disks() []report.Disk {
	ents, _ := os.ReadDir(filepath.Join(r.root, "sys/block"))
	out := []report.Disk{}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") || strings.HasPrefix(n, "dm-") {
			continue
		}
		if len(out) == report.MaxFactsItems {
			break
		}
		d := report.Disk{Name: n}
		if s, err := strconv.ParseInt(r.text("sys/block/"+n+"/size"), 10, 64); err == nil {
			d.Bytes = s * 512
		}
		d.Model = r.text("sys/block/" + n + "/device/model")
		d.Serial = r.text("sys/block/" + n + "/device/serial")
		if d.Serial == "" {
			d.Serial = r.text("sys/block/" + n + "/serial") // virtio
		}
		d.Removable = r.text("sys/block/"+n+"/removable") == "1"
		out = append(out, d)
	}
	return out
}

// nics are /sys/class/net's interfaces but lo, by name.
func (r reader) nics() []report.NIC {
	ents, _ := os.ReadDir(filepath.Join(r.root, "sys/class/net"))
	out := []report.NIC{}
	for _, e := range ents {
		n := e.Name()
		if n == "lo" || len(out) == report.MaxFactsItems {
			continue
		}
		c := report.NIC{Name: n, MAC: r.text("sys/class/net/" + n + "/address")}
		if t, err := os.Readlink(filepath.Join(r.root, "sys/class/net", n, "device/driver")); err == nil {
			c.Driver = filepath.Base(t)
		}
		if s, err := strconv.Atoi(r.text("sys/class/net/" + n + "/speed")); err == nil && s > 0 {
			c.SpeedMbps = s
		}
		out = append(out, c)
	}
	return out
}

// bootloader is a Pi bootloader's version and build time from the device
// tree (/chosen/bootloader/version, a git hash; build-timestamp, seconds),
// as the firmware leaves them; "" if neither is there.
func (r reader) bootloader() string {
	v := r.text("proc/device-tree/chosen/bootloader/version")
	var when string
	if b := r.bytes("proc/device-tree/chosen/bootloader/build-timestamp"); len(b) == 4 {
		when = time.Unix(int64(binary.BigEndian.Uint32(b)), 0).UTC().Format("2006-01-02")
	}
	return strings.TrimSpace(v + " " + when)
}
