package modules

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// elfModule returns a minimal ELF64 little-endian relocatable object for
// machine with a .text section, a .modinfo section holding the given
// "key=value" strings (NUL-terminated, as the kernel lays them out) and a
// section header string table.
func elfModule(machine elf.Machine, modinfo ...string) []byte {
	var info bytes.Buffer
	for _, kv := range modinfo {
		info.WriteString(kv)
		info.WriteByte(0)
	}
	text := []byte{0xc0, 0x03, 0x5f, 0xd6} // arm64 "ret"
	shstrtab := []byte("\x00.text\x00.modinfo\x00.shstrtab\x00")
	nameOff := func(s string) uint32 { return uint32(bytes.Index(shstrtab, []byte("\x00"+s+"\x00")) + 1) }

	const ehsize, shentsize = 64, 64
	textOff := uint64(ehsize)
	infoOff := textOff + uint64(len(text))
	strOff := infoOff + uint64(info.Len())
	shoff := (strOff + uint64(len(shstrtab)) + 7) &^ 7

	le := binary.LittleEndian
	var b bytes.Buffer
	ident := [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	b.Write(ident[:])
	binary.Write(&b, le, uint16(elf.ET_REL))
	binary.Write(&b, le, uint16(machine))
	binary.Write(&b, le, uint32(elf.EV_CURRENT))
	binary.Write(&b, le, uint64(0)) // e_entry
	binary.Write(&b, le, uint64(0)) // e_phoff
	binary.Write(&b, le, shoff)     // e_shoff
	binary.Write(&b, le, uint32(0)) // e_flags
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0)) // e_phentsize
	binary.Write(&b, le, uint16(0)) // e_phnum
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(4)) // e_shnum
	binary.Write(&b, le, uint16(3)) // e_shstrndx
	b.Write(text)
	b.Write(info.Bytes())
	b.Write(shstrtab)
	for uint64(b.Len()) < shoff {
		b.WriteByte(0)
	}
	sh := func(name uint32, typ elf.SectionType, flags elf.SectionFlag, off, size, align uint64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, uint32(typ))
		binary.Write(&b, le, uint64(flags))
		binary.Write(&b, le, uint64(0)) // sh_addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0)) // sh_link
		binary.Write(&b, le, uint32(0)) // sh_info
		binary.Write(&b, le, align)
		binary.Write(&b, le, uint64(0)) // sh_entsize
	}
	sh(0, elf.SHT_NULL, 0, 0, 0, 0)
	sh(nameOff(".text"), elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_EXECINSTR, textOff, uint64(len(text)), 4)
	sh(nameOff(".modinfo"), elf.SHT_PROGBITS, elf.SHF_ALLOC, infoOff, uint64(info.Len()), 1)
	sh(nameOff(".shstrtab"), elf.SHT_STRTAB, 0, strOff, uint64(len(shstrtab)), 1)
	return b.Bytes()
}

// compress compresses data for a file name ending in .xz, .zst or .gz.
func compress(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	switch {
	case strings.HasSuffix(name, ".xz"):
		w, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case strings.HasSuffix(name, ".zst"):
		w, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case strings.HasSuffix(name, ".gz"):
		w := gzip.NewWriter(&b)
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		return data
	}
	return b.Bytes()
}

// fakeModule is one module file of a fake tree.
type fakeModule struct {
	file    string   // path relative to the root, e.g. "kernel/net/a.ko.xz"
	modinfo []string // "key=value"
}

// writeTree lays out modules (compressed according to their suffix) and
// extra files (e.g. modules.builtin) in a new temporary directory.
func writeTree(t testing.TB, mods []fakeModule, extra map[string]string) string {
	t.Helper()
	root := t.TempDir()
	write := func(name string, data []byte) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range mods {
		write(m.file, compress(t, m.file, elfModule(elf.EM_AARCH64, m.modinfo...)))
	}
	for name, data := range extra {
		write(name, []byte(data))
	}
	return root
}
