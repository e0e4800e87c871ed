package bootcfg

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/ramboot/ramboot/node/bootfs"
)

// BLSEntry is a Boot Loader Specification type #1 entry
// (https://uapi-group.org/specifications/specs/boot_loader_specification/):
// loader/entries/ID.conf.
type BLSEntry struct {
	ID, Title, Version string
	Linux              string   // the kernel, relative to the partition's root
	Initrd             []string // in order; the kernel gets them joined
	Options            string   // every options line, joined by a space
}

// Label is the entry's title and version, or its ID.
func (e BLSEntry) Label() string {
	l := strings.TrimSpace(e.Title + " " + e.Version)
	if l == "" {
		return e.ID
	}
	return l
}

// ParseBLSEntry reads one entry. Keys ramboot cannot honour are errors,
// not ignored: the system they describe would not boot as meant.
func ParseBLSEntry(id string, data []byte) (BLSEntry, error) {
	e := BLSEntry{ID: id}
	var opts []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			k, v = line[:i], strings.TrimSpace(line[i+1:])
		}
		switch k {
		case "title":
			e.Title = v
		case "version":
			e.Version = v
		case "linux":
			e.Linux = v
		case "initrd":
			// One file a line; u-root's parser took the first word.
			if f := strings.Fields(v); len(f) > 0 {
				e.Initrd = append(e.Initrd, f...)
			}
		case "options":
			if strings.Contains(v, "$") {
				return e, fmt.Errorf("options %q use GRUB's environment ($kernelopts, $tuned_params), which ramboot does not read", v)
			}
			opts = append(opts, v)
		case "devicetree", "devicetree-overlay":
			return e, fmt.Errorf("%s is not supported: the running device tree is kept", k)
		case "efi":
			return e, errors.New("an EFI program, not a Linux kernel: ramboot kexecs Linux only")
		}
	}
	if e.Linux == "" {
		return e, errors.New("no linux line")
	}
	e.Options = strings.Join(opts, " ")
	return e, nil
}

var blsDirs = []string{"loader/entries", "boot/loader/entries"}

// FindBLS returns the default BLS entry: loader/loader.conf's "default"
// pattern picks the candidates, the highest ID among them wins (as
// u-root's parser and systemd-boot's version sort, for the usual IDs).
// ErrNone when there are no entries; an error when there are and none
// can be booted.
func FindBLS(p *bootfs.Partition) (BLSEntry, error) {
	var dir string
	var ids []string
	for _, d := range blsDirs {
		names, err := p.ReadDir(d)
		if r := p.Refused(); r != nil {
			return BLSEntry{}, r
		}
		if err != nil {
			continue
		}
		for _, n := range names {
			if id, ok := strings.CutSuffix(n, ".conf"); ok && id != "" {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			dir = d
			break
		}
	}
	if len(ids) == 0 {
		return BLSEntry{}, ErrNone
	}
	pattern := ""
	if conf, err := p.ReadConfig(path.Join(path.Dir(dir), "loader.conf")); err == nil {
		pattern = loaderDefault(conf)
	}
	if r := p.Refused(); r != nil {
		return BLSEntry{}, r
	}
	sort.SliceStable(ids, func(i, j int) bool {
		mi, mj := matches(pattern, ids[i]), matches(pattern, ids[j])
		if mi != mj {
			return mi
		}
		return ids[i] > ids[j]
	})
	var first error
	for _, id := range ids {
		data, err := p.ReadConfig(path.Join(dir, id+".conf"))
		if r := p.Refused(); r != nil {
			return BLSEntry{}, r
		}
		if err == nil {
			var e BLSEntry
			if e, err = ParseBLSEntry(id, data); err == nil {
				return e, nil
			}
		}
		if first == nil {
			first = fmt.Errorf("%s/%s.conf: %w", dir, id, err)
		}
	}
	return BLSEntry{}, first
}

// loaderDefault is loader.conf's "default" glob ("" for none).
func loaderDefault(conf []byte) string {
	pattern := ""
	for _, line := range strings.Split(string(conf), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "default" {
			pattern = strings.TrimSuffix(f[1], ".conf")
		}
	}
	return pattern
}

func matches(pattern, id string) bool {
	if pattern == "" {
		return false
	}
	ok, err := path.Match(pattern, id)
	return err == nil && ok
}
