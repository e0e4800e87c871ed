package modules

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"strings"
)

// Module is one loadable kernel module, as described by its .modinfo section.
type Module struct {
	// Name is the module name with '-' normalised to '_' (e.g. "mdio_bcm_unimac").
	Name string
	// Path is the module's path relative to the tree root, with slashes and
	// without the compression suffix: the name it gets in the initramfs
	// (e.g. "kernel/drivers/net/ethernet/broadcom/genet/genet.ko"). It is
	// empty for a Module returned by ReadModInfo.
	Path string
	// Depends are the hard dependencies (module names), in .modinfo order.
	Depends []string
	// SoftPre and SoftPost are the softdep= "pre:" and "post:" names
	// (module names or aliases), normalised.
	SoftPre  []string
	SoftPost []string
	// Aliases are the alias= patterns, as written in the module.
	Aliases []string
	// Firmware are the firmware= files the module may request.
	Firmware []string
	// Vermagic is the kernel version magic, e.g.
	// "6.12.117+deb13-arm64 SMP mod_unload modversions aarch64".
	Vermagic string
}

// ErrNotELF is returned (wrapped) by ReadModInfo for data that is not an ELF file.
var ErrNotELF = errors.New("not an ELF file (is it still compressed?)")

// ReadModInfo parses the .modinfo section of a decompressed kernel module
// (an ELF relocatable object of any class and byte order, in practice
// 64-bit little-endian arm64 or amd64). It never panics on bad input.
func ReadModInfo(elfData []byte) (m Module, err error) {
	if len(elfData) < 4 || !bytes.Equal(elfData[:4], []byte(elf.ELFMAG)) {
		return Module{}, ErrNotELF
	}
	defer func() {
		// debug/elf is meant to return errors for malformed files; this is
		// a last line of defence, as module files are untrusted input.
		if r := recover(); r != nil {
			m, err = Module{}, fmt.Errorf("malformed ELF file: %v", r)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(elfData))
	if err != nil {
		return Module{}, fmt.Errorf("malformed ELF file: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return Module{}, errors.New("ELF file has no .modinfo section (not a kernel module?)")
	}
	if sec.Type == elf.SHT_NOBITS || sec.Size > uint64(len(elfData)) {
		return Module{}, errors.New("malformed .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return Module{}, fmt.Errorf("reading .modinfo: %w", err)
	}
	return parseModInfo(data)
}

// parseModInfo parses NUL-separated key=value strings.
func parseModInfo(data []byte) (Module, error) {
	var m Module
	for _, field := range bytes.Split(data, []byte{0}) {
		key, value, ok := strings.Cut(string(field), "=")
		if !ok {
			continue // padding between entries
		}
		switch key {
		case "name":
			m.Name = NormalizeName(value)
		case "depends":
			for _, d := range strings.Split(value, ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.Depends = append(m.Depends, NormalizeName(d))
				}
			}
		case "softdep":
			pre, post := parseSoftdep(value)
			m.SoftPre = append(m.SoftPre, pre...)
			m.SoftPost = append(m.SoftPost, post...)
		case "alias":
			m.Aliases = append(m.Aliases, value)
		case "firmware":
			m.Firmware = append(m.Firmware, value)
		case "vermagic":
			m.Vermagic = value
		}
	}
	return m, nil
}

// parseSoftdep parses a softdep value such as "pre: crc32c post: foo bar".
// Like kmod, it ignores names before the first "pre:" or "post:" (cifs in
// 6.12 has softdep=gcm and the like).
func parseSoftdep(v string) (pre, post []string) {
	var cur *[]string
	for _, w := range strings.Fields(v) {
		switch w {
		case "pre:":
			cur = &pre
		case "post:":
			cur = &post
		default:
			if cur != nil {
				*cur = append(*cur, NormalizeName(w))
			}
		}
	}
	return pre, post
}

// NormalizeName returns a module name as the kernel sees it: '-' becomes '_'.
func NormalizeName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}
