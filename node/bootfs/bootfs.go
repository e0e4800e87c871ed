// Package bootfs gives the boot-configuration readers of the local boot
// the files of one partition and nothing else. The partition is a disk
// the node found, not one ramboot wrote: anyone who had the machine
// before may have left it hostile. So:
//
//   - every name is resolved inside the partition with os.Root: "..",
//     absolute symbolic links and relative ones that climb out are
//     refused (ErrOutside);
//   - only regular files are opened, without blocking (a FIFO or a
//     device node on the disk is refused: ErrNotRegular);
//   - every read is bounded while it happens: a configuration file to
//     MaxConfig, a kernel or initramfs to the Partition's MaxFile, all the
//     files the configurations name together to its budget (ErrTooLarge);
//   - configuration files (includes, configfile) are bounded in number
//     per parse: MaxConfigs (ErrTooMany).
//
// u-root's GRUB and syslinux parsers fetch files through curl.Schemes;
// Schemes gives them a "file" scheme that applies the same rules to the
// URLs they build, and remembers the first refusal (Refused), since the
// parsers take some fetch errors for "no such file" and go on.
//
//	p, err := bootfs.Open("/mnt/vda1", 512<<20, 1<<30)
//	...
//	defer p.Close()
//	cfg, err := p.ReadConfig("boot/grub/grub.cfg")
package bootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	"github.com/u-root/u-root/pkg/curl"
)

const (
	// MaxConfig bounds one configuration file (config.txt, grub.cfg, a
	// BLS entry, extlinux.conf, an include).
	MaxConfig = 256 << 10
	// MaxConfigs bounds the configuration files one parse reads: the
	// file it starts from and every include or configfile.
	MaxConfigs = 32
	// MaxDirEntries bounds a directory listing (loader/entries, EFI).
	MaxDirEntries = 256
)

// The refusals, for errors.Is.
var (
	ErrOutside    = errors.New("outside the partition")
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("too large")
	ErrTooMany    = errors.New("too many configuration files")
)

// Partition is one mounted file system.
type Partition struct {
	// Dir is where it is mounted: the parsers' file:// URLs start with it.
	Dir string
	// MaxFile bounds one kernel or initramfs.
	MaxFile int64

	root      *os.Root
	configs   int   // configuration files read in this parse
	parseDone bool  // EndParse was called
	budget    int64 // bytes left for the files a configuration names
	refused   error
	handed    []*os.File // files handed to a parser, closed by Close
}

// Open opens the partition mounted at dir: each file a configuration
// names at most maxFile bytes, all of them together at most budget.
func Open(dir string, maxFile, budget int64) (*Partition, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Partition{Dir: path.Clean(dir), MaxFile: maxFile, root: r, budget: budget}, nil
}

// Close releases the partition's directory.
func (p *Partition) Close() error {
	for _, f := range p.handed {
		f.Close()
	}
	p.handed = nil
	return p.root.Close()
}

// StartParse resets the count of configuration files and the refusal,
// before a parser starts.
func (p *Partition) StartParse() {
	p.configs = 0
	p.refused = nil
	p.parseDone = false
}

// Refused is the first refusal since StartParse: a name outside the
// partition, a special file, a file too large, too many configuration
// files. A parser that met one is not to be trusted with its result.
func (p *Partition) Refused() error { return p.refused }

func (p *Partition) refuse(err error) error {
	if p.refused == nil {
		p.refused = err
	}
	return err
}

// name checks a name given relative to the partition's root ("/boot/x"
// is "boot/x"), as path.Clean leaves it; ".." that leaves the partition
// is refused here, before os.Root sees it.
func (p *Partition) name(name string) (string, error) {
	n := path.Clean("/" + name)
	if strings.Contains(name, "\x00") {
		return "", p.refuse(fmt.Errorf("%q: a NUL in a file name", name))
	}
	// A lexical escape: "/.." cleans to "/", so compare with the name as
	// given once its leading slashes are gone.
	if rel := path.Clean(strings.TrimLeft(name, "/")); rel == ".." || strings.HasPrefix(rel, "../") {
		return "", p.refuse(fmt.Errorf("%s: %w", name, ErrOutside))
	}
	if n == "/" {
		return ".", nil
	}
	return n[1:], nil
}

// failed classifies an error of os.Root: a missing file is just that;
// a symbolic link out of the root (os.Root refuses those), a loop of
// links, a permission are refusals worth saying.
func (p *Partition) failed(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if strings.Contains(err.Error(), "escapes") || strings.Contains(err.Error(), "symbolic link") {
		err = fmt.Errorf("%s: %w (%v)", name, ErrOutside, err)
	}
	return p.refuse(err)
}

// open opens a regular file inside the partition without blocking.
func (p *Partition) open(name string) (*os.File, fs.FileInfo, error) {
	n, err := p.name(name)
	if err != nil {
		return nil, nil, err
	}
	f, err := p.root.OpenFile(n, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, p.failed(name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, p.refuse(fmt.Errorf("%s: %w (%s)", name, ErrNotRegular, fi.Mode().Type()))
	}
	return f, fi, nil
}

// Exists says whether name is a regular file inside the partition; a
// name that leaves it is a refusal (Refused).
func (p *Partition) Exists(name string) bool {
	n, err := p.name(name)
	if err != nil {
		return false
	}
	fi, err := p.root.Stat(n)
	if err != nil {
		p.failed(name, err)
		return false
	}
	return fi.Mode().IsRegular()
}

// ReadConfig reads a configuration file, bounded by MaxConfig and
// counted against MaxConfigs.
func (p *Partition) ReadConfig(name string) ([]byte, error) {
	if p.configs >= MaxConfigs {
		return nil, p.refuse(fmt.Errorf("%s: %w: more than %d (an include loop?)", name, ErrTooMany, MaxConfigs))
	}
	f, _, err := p.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p.configs++
	b, err := readBounded(f, MaxConfig)
	if err != nil {
		return nil, p.refuse(fmt.Errorf("%s: %w", name, err))
	}
	return b, nil
}

// ReadFile reads a kernel or initramfs, bounded by MaxFile and by what is
// left of the partition's budget.
func (p *Partition) ReadFile(name string) ([]byte, error) {
	r, err := p.section(name)
	if err != nil {
		return nil, err
	}
	defer p.closeLast()
	return readBounded(r, r.Size())
}

// section opens a file the configuration named and returns it as a
// reader that ends at the size checked here: it cannot give more.
func (p *Partition) section(name string) (*io.SectionReader, error) {
	f, fi, err := p.open(name)
	if err != nil {
		return nil, err
	}
	max := min(p.MaxFile, p.budget)
	if fi.Size() > max {
		f.Close()
		return nil, p.refuse(fmt.Errorf("%s: %w: %s, more than %s", name, ErrTooLarge, size(fi.Size()), size(max)))
	}
	p.budget -= fi.Size()
	p.handed = append(p.handed, f)
	return io.NewSectionReader(f, 0, fi.Size()), nil
}

func (p *Partition) closeLast() {
	if n := len(p.handed); n > 0 {
		p.handed[n-1].Close()
		p.handed = p.handed[:n-1]
	}
}

// ReadDir lists the names in a directory, sorted, at most MaxDirEntries.
func (p *Partition) ReadDir(name string) ([]string, error) {
	n, err := p.name(name)
	if err != nil {
		return nil, err
	}
	d, err := p.root.Open(n)
	if err != nil {
		return nil, p.failed(name, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(MaxDirEntries + 1)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(names) > MaxDirEntries {
		return nil, p.refuse(fmt.Errorf("%s: %w: more than %d entries", name, ErrTooLarge, MaxDirEntries))
	}
	sort.Strings(names)
	return names, nil
}

// FS is the partition as an fs.FS for readers written against one
// (piconfig): Open has the rules above; the reader bounds its reads.
func (p *Partition) FS() fs.FS { return partFS{p} }

type partFS struct{ p *Partition }

func (f partFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return f.p.root.Open(".")
	}
	file, _, err := f.p.open(name)
	if err != nil {
		return nil, err
	}
	return file, nil
}

// readBounded reads r to its end, failing once more than max bytes came.
func readBounded(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %s", ErrTooLarge, size(max))
	}
	return b, nil
}

func size(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MB", n>>20)
	}
	return fmt.Sprintf("%d KB", n>>10)
}

// Schemes are curl schemes for u-root's parsers: "file" URLs inside the
// partition, nothing else (no http, no tftp). While parsing, a fetch is
// a configuration file (ReadConfig); after EndParse, a kernel, initramfs
// or device tree (ReadFile).
func (p *Partition) Schemes() curl.Schemes {
	return curl.Schemes{"file": fileScheme{p}}
}

type fileScheme struct{ p *Partition }

// rel turns a parser's URL into a name inside the partition.
func (s fileScheme) rel(u *url.URL) (string, error) {
	if u.Host != "" || u.Opaque != "" {
		return "", s.p.refuse(fmt.Errorf("%s: %w", u, ErrOutside))
	}
	c := path.Clean(u.Path)
	switch {
	case c == s.p.Dir:
		return ".", nil
	case strings.HasPrefix(c, s.p.Dir+"/"):
		return strings.TrimPrefix(c, s.p.Dir+"/"), nil
	}
	return "", s.p.refuse(fmt.Errorf("%s: %w", c, ErrOutside))
}

// fetch is a configuration file while parsing, the partition's file
// (a kernel, an initramfs) after.
func (s fileScheme) fetch(u *url.URL) (*io.SectionReader, error) {
	n, err := s.rel(u)
	if err != nil {
		return nil, err
	}
	if !s.p.parseDone {
		b, err := s.p.ReadConfig(n)
		if err != nil {
			return nil, err
		}
		return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b))), nil
	}
	return s.p.section(n)
}

func (s fileScheme) Fetch(_ context.Context, u *url.URL) (io.ReaderAt, error) {
	r, err := s.fetch(u)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (s fileScheme) FetchWithoutCache(_ context.Context, u *url.URL) (io.Reader, error) {
	r, err := s.fetch(u)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// EndParse ends the parse: the scheme's fetches are now the files the
// configuration named.
func (p *Partition) EndParse() { p.parseDone = true }
