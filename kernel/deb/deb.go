// Package deb reads Debian binary packages (.deb files) in pure Go, without
// dpkg, ar or tar binaries and without root.
//
// A .deb is an ar(1) archive holding, in order, "debian-binary" (the format
// version, "2.0"), "control.tar[.gz|.xz|.zst]" (package metadata) and
// "data.tar[.gz|.xz|.zst|.bz2|.lzma]" (the files to install). Walk iterates
// over the entries of data.tar and Control returns the fields of the control
// file.
//
// Entry names are normalised: the leading "./" (or "/") that dpkg-deb writes
// is removed, so the kernel image of a Debian kernel package is named
// "boot/vmlinuz-...". The root directory entry "./" is reported as ".".
//
// Nothing is extracted to disk and nothing is trusted: the caller decides what
// to do with each entry (and should not trust names containing "..").
package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// ErrStop may be returned by a Walk callback to end the walk early. Walk then
// returns nil.
var ErrStop = errors.New("deb: stop walking")

// maxControlSize bounds the control file we read into memory.
const maxControlSize = 4 << 20

// Walk calls fn for each entry of the data.tar member of the .deb at debPath,
// in archive order. hdr.Name is normalised (see the package documentation);
// r reads the entry's content (empty for directories, links, etc.) and is
// only valid until fn returns.
//
// If fn returns ErrStop, Walk stops and returns nil. Any other error from fn
// is returned wrapped, so errors.Is works on it.
func Walk(debPath string, fn func(hdr *tar.Header, r io.Reader) error) error {
	f, err := os.Open(debPath)
	if err != nil {
		return err
	}
	defer f.Close()
	return walkReader(f, debPath, fn)
}

// Control returns the fields of the control file of the .deb at debPath
// (Package, Version, Architecture, Description...). Continuation lines of
// multi-line fields are kept, joined by "\n", with their leading space
// removed and "." lines turned into empty lines as in deb-control(5).
func Control(debPath string) (map[string]string, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return controlReader(f, debPath)
}

func walkReader(r io.Reader, name string, fn func(hdr *tar.Header, r io.Reader) error) error {
	err := withMember(r, name, "data.tar", true, func(tr *tar.Reader) error {
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("data.tar: %w", err)
			}
			hdr.Name = normalize(hdr.Name)
			if err := fn(hdr, tr); err != nil {
				return errCallback{err}
			}
		}
	})
	var cb errCallback
	if errors.As(err, &cb) {
		if errors.Is(cb.err, ErrStop) {
			return nil
		}
		return fmt.Errorf("%s: %w", name, cb.err)
	}
	return err
}

func controlReader(r io.Reader, name string) (map[string]string, error) {
	var fields map[string]string
	err := withMember(r, name, "control.tar", false, func(tr *tar.Reader) error {
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				return errors.New("control.tar has no control file")
			}
			if err != nil {
				return fmt.Errorf("control.tar: %w", err)
			}
			if normalize(hdr.Name) != "control" || hdr.Typeflag != tar.TypeReg {
				continue
			}
			data, err := io.ReadAll(io.LimitReader(tr, maxControlSize+1))
			if err != nil {
				return fmt.Errorf("control.tar: control: %w", err)
			}
			if len(data) > maxControlSize {
				return errors.New("control file is too large")
			}
			fields, err = parseControl(data)
			if err != nil {
				return fmt.Errorf("control file: %w", err)
			}
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	return fields, nil
}

// errCallback marks an error returned by the caller's function, so that it is
// not reported as a problem of the package file.
type errCallback struct{ err error }

func (e errCallback) Error() string { return e.err.Error() }
func (e errCallback) Unwrap() error { return e.err }

// withMember finds the member named want+compression suffix in the .deb read
// from r and calls fn with a tar reader over its decompressed content. If
// verify is set and fn succeeds, the rest of the decompressed stream is read
// so that truncation and checksum errors past the end of the tar archive are
// reported too.
func withMember(r io.Reader, name, want string, verify bool, fn func(*tar.Reader) error) error {
	ar, err := newARReader(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for i := 0; ; i++ {
		m, err := ar.next()
		if err == io.EOF {
			return fmt.Errorf("%s: not a valid Debian package (no %s member)", name, want)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if i == 0 {
			if m.Name != "debian-binary" {
				return fmt.Errorf("%s: not a Debian package (first ar member is %q, not debian-binary)", name, m.Name)
			}
			v, err := io.ReadAll(io.LimitReader(ar, 64))
			if err != nil {
				return fmt.Errorf("%s: debian-binary: %w", name, err)
			}
			if !bytes.HasPrefix(v, []byte("2.")) {
				return fmt.Errorf("%s: unsupported Debian package format %q (want 2.x)", name, strings.TrimSpace(string(v)))
			}
			continue
		}
		comp, ok := strings.CutPrefix(m.Name, want)
		if !ok {
			continue
		}
		dr, closeFn, err := decompressor(comp, ar)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", name, m.Name, err)
		}
		err = fn(tar.NewReader(dr))
		if err == nil && verify {
			_, err = io.Copy(io.Discard, dr)
		}
		closeFn()
		var cb errCallback
		if err != nil && !errors.As(err, &cb) {
			return fmt.Errorf("%s: %s: %w", name, m.Name, err)
		}
		return err
	}
}

// decompressor returns a reader that decompresses r according to the member
// name suffix ("", ".gz", ".xz", ".zst", ".bz2", ".lzma").
func decompressor(suffix string, r io.Reader) (io.Reader, func(), error) {
	nop := func() {}
	switch suffix {
	case "":
		return r, nop, nil
	case ".gz":
		zr, err := gzip.NewReader(bufio.NewReader(r))
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case ".xz":
		zr, err := xz.NewReader(bufio.NewReader(r))
		if err != nil {
			return nil, nil, fmt.Errorf("xz: %w", err)
		}
		return zr, nop, nil
	case ".zst":
		zr, err := zstd.NewReader(r,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	case ".bz2":
		return bzip2.NewReader(bufio.NewReader(r)), nop, nil
	case ".lzma":
		zr, err := lzma.NewReader(bufio.NewReader(r))
		if err != nil {
			return nil, nil, fmt.Errorf("lzma: %w", err)
		}
		return zr, nop, nil
	default:
		return nil, nil, fmt.Errorf("unsupported compression %q", suffix)
	}
}

// normalize strips the "./" or "/" prefix of a tar entry name and any
// trailing "/" of a directory name; the root directory becomes ".".
func normalize(name string) string {
	n := strings.TrimLeft(name, "/")
	for strings.HasPrefix(n, "./") {
		n = strings.TrimLeft(n[2:], "/")
	}
	n = strings.TrimRight(n, "/")
	if n == "" || n == "." {
		return "."
	}
	return n
}

// parseControl parses one deb822 paragraph.
func parseControl(data []byte) (map[string]string, error) {
	fields := make(map[string]string)
	var last string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.TrimSpace(line) == "":
			if len(fields) > 0 {
				return fields, nil // end of the first paragraph
			}
		case line[0] == '#':
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation line without a field", i+1)
			}
			cont := line[1:]
			if strings.TrimSpace(cont) == "." {
				cont = ""
			}
			fields[last] += "\n" + cont
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				return nil, fmt.Errorf("line %d: malformed field %q", i+1, line)
			}
			last = k
			fields[k] = strings.TrimSpace(v)
		}
	}
	if len(fields) == 0 {
		return nil, errors.New("empty control file")
	}
	return fields, nil
}
