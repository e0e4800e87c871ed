// Package initramfs assembles ramboot's initramfs: a reproducible newc cpio
// archive, gzip-compressed, written without root, host cpio or loop mounts.
//
//	a := initramfs.New()
//	a.File("init", 0o755, initBinary)
//	a.Symlink("bin/sh", "/bbin/gosh")
//	a.CharDev("dev/console", 0o600, 5, 1)
//	err := a.WriteGzip(w, initramfs.Options{ModTime: time.Unix(0, 0)})
//
// The archive is the same bytes for the same entries: entries are sorted by
// path, every entry has uid/gid 0, the same modification time, inode
// numbers in path order, and the gzip stream has a fixed header (no name,
// no time) and a fixed block size.
package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/pgzip"
)

// Kind is the type of an archive entry.
type Kind int

const (
	KindFile Kind = iota
	KindDir
	KindSymlink
	KindCharDev
)

// Entry is one file in the archive.
type Entry struct {
	Path   string // relative, cleaned, no leading slash
	Kind   Kind
	Perm   fs.FileMode // permission bits (and setuid/setgid/sticky)
	Data   []byte      // KindFile
	Link   string      // KindSymlink target
	Major  uint32      // KindCharDev
	Minor  uint32      // KindCharDev
	Origin string      // where it came from, for messages ("overlay /x/y")
}

// Archive is a set of entries keyed by path. Adding a path again replaces
// the earlier entry, so overlays laid on later win, Buildroot-style.
type Archive struct {
	entries map[string]*Entry
}

// New returns an empty archive.
func New() *Archive { return &Archive{entries: map[string]*Entry{}} }

// ErrBadPath is returned for paths that are absolute after cleaning,
// escape the root, or are empty.
var ErrBadPath = errors.New("bad archive path")

func clean(p string) (string, error) {
	c := path.Clean("/" + p)[1:]
	if c == "" || strings.HasPrefix(p, "../") || p == ".." {
		return "", fmt.Errorf("%w %q", ErrBadPath, p)
	}
	return c, nil
}

func (a *Archive) put(e *Entry) error {
	p, err := clean(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	if old, ok := a.entries[p]; ok && old.Kind == KindDir && e.Kind != KindDir {
		for q := range a.entries {
			if strings.HasPrefix(q, p+"/") {
				return fmt.Errorf("%s: cannot replace directory %s (it holds %s) with a non-directory", e.Origin, p, q)
			}
		}
	}
	// Parents must be directories.
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if pe, ok := a.entries[d]; ok && pe.Kind != KindDir {
			return fmt.Errorf("%s: cannot add %s: %s is not a directory (it came from %s)", e.Origin, p, d, pe.Origin)
		}
	}
	a.entries[p] = e
	return nil
}

// File adds a regular file.
func (a *Archive) File(p string, perm fs.FileMode, data []byte) error {
	return a.put(&Entry{Path: p, Kind: KindFile, Perm: perm, Data: data, Origin: "ramboot"})
}

// Dir adds a directory.
func (a *Archive) Dir(p string, perm fs.FileMode) error {
	return a.put(&Entry{Path: p, Kind: KindDir, Perm: perm, Origin: "ramboot"})
}

// Symlink adds a symbolic link.
func (a *Archive) Symlink(p, target string) error {
	return a.put(&Entry{Path: p, Kind: KindSymlink, Perm: 0o777, Link: target, Origin: "ramboot"})
}

// CharDev adds a character device node.
func (a *Archive) CharDev(p string, perm fs.FileMode, major, minor uint32) error {
	return a.put(&Entry{Path: p, Kind: KindCharDev, Perm: perm, Major: major, Minor: minor, Origin: "ramboot"})
}

// Get returns the entry at p, if any.
func (a *Archive) Get(p string) (*Entry, bool) {
	c, err := clean(p)
	if err != nil {
		return nil, false
	}
	e, ok := a.entries[c]
	return e, ok
}

// Len is the number of entries (without implied parent directories).
func (a *Archive) Len() int { return len(a.entries) }

// AddTree lays a host directory into the archive at prefix ("" for the
// root): regular files, directories and symlinks, keeping permission bits
// but not owners or times. Anything else (device nodes, sockets, FIFOs) is
// an error naming the file, since such files cannot be made without root.
func (a *Archive) AddTree(dir, prefix string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("overlay %s: not a directory (OVERLAYS takes directories whose contents are laid into the initramfs root)", dir)
	}
	return filepath.WalkDir(dir, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
		rel, err := filepath.Rel(dir, hp)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		ap := path.Join(prefix, filepath.ToSlash(rel))
		origin := "overlay " + hp
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
		switch m := info.Mode(); {
		case m.IsDir():
			return a.put(&Entry{Path: ap, Kind: KindDir, Perm: m.Perm() | m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), Origin: origin})
		case m.IsRegular():
			data, err := os.ReadFile(hp)
			if err != nil {
				return fmt.Errorf("overlay: %w", err)
			}
			return a.put(&Entry{Path: ap, Kind: KindFile, Perm: m.Perm() | m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), Data: data, Origin: origin})
		case m&fs.ModeSymlink != 0:
			t, err := os.Readlink(hp)
			if err != nil {
				return fmt.Errorf("overlay: %w", err)
			}
			return a.put(&Entry{Path: ap, Kind: KindSymlink, Perm: 0o777, Link: t, Origin: origin})
		default:
			return fmt.Errorf("overlay %s: %s is a %v; overlays may hold only files, directories and symlinks (device nodes come from devtmpfs at boot)", dir, rel, m.Type())
		}
	})
}

// Entries returns every entry, with implied parent directories added
// (mode 0755), sorted by path so that a parent precedes its children.
func (a *Archive) Entries() []*Entry {
	all := make(map[string]*Entry, len(a.entries))
	for p, e := range a.entries {
		all[p] = e
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := all[d]; ok {
				continue
			}
			if x, ok := a.entries[d]; ok {
				all[d] = x
			} else {
				all[d] = &Entry{Path: d, Kind: KindDir, Perm: 0o755, Origin: "implied"}
			}
		}
	}
	out := make([]*Entry, 0, len(all))
	for _, e := range all {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Options control the written bytes.
type Options struct {
	// ModTime is every entry's modification time; use SOURCE_DATE_EPOCH
	// or the zero Unix time for reproducible output.
	ModTime time.Time
	// GzipLevel defaults to pgzip.BestCompression.
	GzipLevel int
	// BlockSize is pgzip's block size (default 1 MiB). It changes the
	// output bytes, so it is fixed, not derived from the machine.
	BlockSize int
}

// WriteCPIO writes the archive as one newc cpio stream with one trailer,
// so that `cpio -t` and any other reader see every entry, and the kernel
// unpacks it as it does any initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst).
//
// The headers are written here rather than with a cpio library: the newc
// header's rdevmajor/rdevminor fields (device nodes) must be filled in,
// and every other field is fixed for reproducible output: inode numbers in
// path order from 1, uid/gid 0, one modification time, no checksum.
func (a *Archive) WriteCPIO(w io.Writer, o Options) error {
	mtime := o.ModTime.Unix()
	if o.ModTime.IsZero() {
		mtime = 0
	}
	nw := &newcWriter{w: bufio.NewWriterSize(w, 1<<16), mtime: mtime}
	for _, e := range a.Entries() {
		if err := nw.entry(e); err != nil {
			return fmt.Errorf("cpio %s: %w", e.Path, err)
		}
	}
	return nw.close()
}

// newc mode bits: the file type (S_IFMT) and the special permission bits.
const (
	newcDir     = 0o040000
	newcReg     = 0o100000
	newcSymlink = 0o120000
	newcCharDev = 0o020000
	newcSetuid  = 0o4000
	newcSetgid  = 0o2000
	newcSticky  = 0o1000
)

// newcWriter writes newc ("070701") headers and bodies, padded to 4 bytes,
// and a trailer padded to a 512-byte block, as GNU cpio does.
type newcWriter struct {
	w     *bufio.Writer
	n     int64 // bytes written
	ino   uint32
	mtime int64
}

func (nw *newcWriter) write(p []byte) error {
	n, err := nw.w.Write(p)
	nw.n += int64(n)
	return err
}

func (nw *newcWriter) pad(to int64) error {
	var zero [512]byte
	if r := nw.n % to; r != 0 {
		return nw.write(zero[:to-r])
	}
	return nil
}

func (nw *newcWriter) header(name string, ino, mode, nlink uint32, size int64, major, minor uint32) error {
	if size > 0xFFFFFFFF {
		return fmt.Errorf("%d bytes: newc cpio holds files up to 4 GiB", size)
	}
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, uint32(nw.mtime), uint32(size), 0, 0, major, minor, len(name)+1, 0)
	if err := nw.write([]byte(h + name + "\x00")); err != nil {
		return err
	}
	return nw.pad(4)
}

func (nw *newcWriter) entry(e *Entry) error {
	mode := uint32(e.Perm.Perm())
	if e.Perm&fs.ModeSetuid != 0 {
		mode |= newcSetuid
	}
	if e.Perm&fs.ModeSetgid != 0 {
		mode |= newcSetgid
	}
	if e.Perm&fs.ModeSticky != 0 {
		mode |= newcSticky
	}
	var body []byte
	nlink, major, minor := uint32(1), uint32(0), uint32(0)
	switch e.Kind {
	case KindFile:
		mode |= newcReg
		body = e.Data
	case KindDir:
		mode |= newcDir
		nlink = 2
	case KindSymlink:
		mode |= newcSymlink
		body = []byte(e.Link)
	case KindCharDev:
		mode |= newcCharDev
		major, minor = e.Major, e.Minor
	default:
		return fmt.Errorf("unknown entry kind %d", e.Kind)
	}
	nw.ino++
	if err := nw.header(e.Path, nw.ino, mode, nlink, int64(len(body)), major, minor); err != nil {
		return err
	}
	if err := nw.write(body); err != nil {
		return err
	}
	return nw.pad(4)
}

func (nw *newcWriter) close() error {
	if err := nw.header("TRAILER!!!", 0, 0, 1, 0, 0, 0); err != nil {
		return err
	}
	if err := nw.pad(512); err != nil {
		return err
	}
	return nw.w.Flush()
}

// WriteGzip writes the archive as gzip-compressed newc cpio with
// klauspost/pgzip, with a fixed header and block size.
func (a *Archive) WriteGzip(w io.Writer, o Options) error {
	return Gzip(w, o, func(zw io.Writer) error { return a.WriteCPIO(zw, o) })
}

// Gzip compresses what fill writes with a fixed header (no name, no
// time, OS byte fixed) and fixed block size, so the same input gives the
// same bytes on every machine.
func Gzip(w io.Writer, o Options, fill func(io.Writer) error) error {
	level := o.GzipLevel
	if level == 0 {
		level = pgzip.BestCompression
	}
	bs := o.BlockSize
	if bs == 0 {
		bs = 1 << 20
	}
	zw, err := pgzip.NewWriterLevel(w, level)
	if err != nil {
		return err
	}
	if err := zw.SetConcurrency(bs, 8); err != nil {
		return err
	}
	zw.Header.ModTime = time.Unix(0, 0) // the gzip header has no "unset" time but 0
	zw.Header.Name = ""
	zw.Header.OS = 3 // Unix, whatever the build host
	if err := fill(zw); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}
