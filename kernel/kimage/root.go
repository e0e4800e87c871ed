package kimage

// Root images and the programs inside them: the builder checks a user's
// root with these, and the init checks a downloaded root image and the init
// it is about to exec, before its point of no return.

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Squashfs is the kind of a squashfs image ("hsqs" at offset 0).
const Squashfs = "squashfs"

// SquashfsMagic is the little-endian magic at the start of a squashfs.
const SquashfsMagic = 0x73717368

// SquashfsInfo is what a squashfs superblock says of the image.
type SquashfsInfo struct {
	// BytesUsed is the image's length (the file may be padded beyond it).
	BytesUsed int64
	// Compression is the compressor's name: gzip, lzma, lzo, xz, lz4, zstd.
	Compression string
	Major       uint16
}

// ParseSquashfs reads a squashfs superblock (the first 96 bytes).
func ParseSquashfs(sb []byte) (SquashfsInfo, error) {
	if len(sb) < 96 {
		return SquashfsInfo{}, errors.New("squashfs: superblock is shorter than 96 bytes")
	}
	if binary.LittleEndian.Uint32(sb[0:4]) != SquashfsMagic {
		return SquashfsInfo{}, errors.New("not a squashfs image (no \"hsqs\" magic at its start)")
	}
	comp := map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}[binary.LittleEndian.Uint16(sb[20:22])]
	if comp == "" {
		comp = fmt.Sprintf("compressor %d", binary.LittleEndian.Uint16(sb[20:22]))
	}
	info := SquashfsInfo{
		BytesUsed:   int64(binary.LittleEndian.Uint64(sb[40:48])),
		Compression: comp,
		Major:       binary.LittleEndian.Uint16(sb[28:30]),
	}
	if info.Major != 4 {
		return info, fmt.Errorf("squashfs version %d: the kernel reads version 4 only", info.Major)
	}
	if info.BytesUsed < 96 {
		return info, fmt.Errorf("squashfs: superblock says the image is %d bytes long", info.BytesUsed)
	}
	return info, nil
}

// ResolveIn resolves p (absolute, as seen inside root) to a path on this
// machine under root, following symbolic links as the kernel would after a
// chroot to root: absolute link targets start again at root, and ".." never
// climbs above it. The last element must exist.
func ResolveIn(root, p string) (string, error) {
	const maxLinks = 40
	links := 0
	rest := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/" // inside root
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, name)
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", fmt.Errorf("%s: %w", next, fs.ErrNotExist)
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		t, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(t, "/") {
			cur = "/"
		}
		rest = append(strings.Split(t, "/"), rest...)
	}
	return filepath.Join(root, cur), nil
}

// ELFInfo is what matters of a program about to be exec'd.
type ELFInfo struct {
	Arch   string // Debian name: arm64, amd64, armhf, i386, riscv64, ...
	Interp string // PT_INTERP, "" for a static program
}

// ReadELF reads a program's architecture and interpreter. A file that is
// not ELF returns an error.
func ReadELF(p string) (ELFInfo, error) {
	f, err := elf.Open(p)
	if err != nil {
		return ELFInfo{}, err
	}
	defer f.Close()
	var info ELFInfo
	switch f.Machine {
	case elf.EM_AARCH64:
		info.Arch = "arm64"
	case elf.EM_X86_64:
		info.Arch = "amd64"
	case elf.EM_ARM:
		info.Arch = "armhf"
	case elf.EM_386:
		info.Arch = "i386"
	case elf.EM_RISCV:
		info.Arch = "riscv64"
	default:
		info.Arch = strings.ToLower(strings.TrimPrefix(f.Machine.String(), "EM_"))
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err == nil {
				info.Interp = strings.TrimRight(string(b), "\x00")
			}
		}
	}
	return info, nil
}

// CheckInit checks that init (absolute, inside root) can be exec'd as PID 1
// on a machine of arch (a Debian architecture name): it exists, is a regular
// executable file, is ELF for arch with its interpreter present, or a script
// whose interpreter is. The error says which and names the path.
func CheckInit(root, init, arch string) error {
	return checkExec(root, init, arch, 0)
}

func checkExec(root, prog, arch string, depth int) error {
	if !strings.HasPrefix(prog, "/") {
		return fmt.Errorf("init %q is not an absolute path", prog)
	}
	if depth > 4 {
		return fmt.Errorf("%s: too many levels of script interpreters", prog)
	}
	real, err := ResolveIn(root, prog)
	if err != nil {
		return fmt.Errorf("no %s in the new root (%v)", prog, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("%s: %w", prog, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", prog, st.Mode().Type())
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable (mode %v)", prog, st.Mode().Perm())
	}
	head := make([]byte, 256)
	f, err := os.Open(real)
	if err != nil {
		return fmt.Errorf("%s: %w", prog, err)
	}
	n, _ := f.Read(head)
	f.Close()
	head = head[:n]
	if len(head) > 2 && head[0] == '#' && head[1] == '!' {
		line, _, _ := strings.Cut(string(head[2:]), "\n")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			return fmt.Errorf("%s: a script with no interpreter on its #! line", prog)
		}
		if err := checkExec(root, fields[0], arch, depth+1); err != nil {
			return fmt.Errorf("%s: its interpreter: %w", prog, err)
		}
		return nil
	}
	info, err := ReadELF(real)
	if err != nil {
		return fmt.Errorf("%s is neither ELF nor a #! script: %v", prog, err)
	}
	if info.Arch != arch {
		return fmt.Errorf("%s is an %s program; this machine is %s: the image is for another architecture", prog, info.Arch, arch)
	}
	if info.Interp != "" {
		if _, err := ResolveIn(root, info.Interp); err != nil {
			return fmt.Errorf("%s needs the program interpreter %s, which the new root lacks", prog, info.Interp)
		}
	}
	return nil
}
