// Package debtest builds small .deb files in memory for tests, without dpkg.
//
// It is meant for tests of ramboot packages that consume .deb files (the deb
// reader itself, the apt client, image builders); it is not used by ramboot at
// run time.
package debtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// File is one entry of the data (or control) archive. Entries whose Name
// ends in "/" are directories; a non-empty Link makes a symlink.
type File struct {
	Name string // as stored, e.g. "./boot/vmlinuz-6.1.0-arm64"
	Body []byte
	Mode int64 // 0 means 0644 for files, 0755 for directories
	Link string
}

// Package describes a .deb to build.
type Package struct {
	// Control holds the control fields. Package, Version and Architecture
	// default to "test", "1.0" and "arm64".
	Control map[string]string
	Files   []File
	// Compression of control.tar and data.tar: "gz" (default), "xz",
	// "zst" or "none".
	Compression string
	// ARNames selects the ar member name style: "gnu" (default, "name/"),
	// "sysv" ("name") or "bsd" ("#1/N" with the name before the data).
	ARNames string
}

// Build returns the bytes of the .deb described by p.
func Build(p Package) ([]byte, error) {
	ctrl := map[string]string{"Package": "test", "Version": "1.0", "Architecture": "arm64"}
	for k, v := range p.Control {
		ctrl[k] = v
	}
	var cb strings.Builder
	keys := make([]string, 0, len(ctrl))
	for k := range ctrl {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		// Package first, like dpkg-deb.
		if (keys[i] == "Package") != (keys[j] == "Package") {
			return keys[i] == "Package"
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		fmt.Fprintf(&cb, "%s: %s\n", k, ctrl[k])
	}
	controlTar, err := Tar([]File{{Name: "./"}, {Name: "./control", Body: []byte(cb.String())}})
	if err != nil {
		return nil, err
	}
	dataTar, err := Tar(p.Files)
	if err != nil {
		return nil, err
	}
	comp := p.Compression
	if comp == "" {
		comp = "gz"
	}
	controlZ, ext, err := Compress(comp, controlTar)
	if err != nil {
		return nil, err
	}
	dataZ, _, err := Compress(comp, dataTar)
	if err != nil {
		return nil, err
	}
	return AR(p.ARNames, []Member{
		{Name: "debian-binary", Data: []byte("2.0\n")},
		{Name: "control.tar" + ext, Data: controlZ},
		{Name: "data.tar" + ext, Data: dataZ},
	})
}

// MustBuild is Build for tests: it panics on error.
func MustBuild(p Package) []byte {
	b, err := Build(p)
	if err != nil {
		panic(err)
	}
	return b
}

// Tar returns an uncompressed tar archive of files.
func Tar(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatGNU}
		switch {
		case strings.HasSuffix(f.Name, "/"):
			h.Typeflag = tar.TypeDir
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Link != "":
			h.Typeflag = tar.TypeSymlink
			h.Linkname = f.Link
			h.Mode = 0o777
		default:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.Body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Compress compresses data with method "gz", "xz", "zst" or "none" and
// returns it with the file name suffix for that method ("" for "none").
func Compress(method string, data []byte) ([]byte, string, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch method {
	case "none":
		return data, "", nil
	case "gz":
		w = gzip.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zst":
		w, err = zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	default:
		return nil, "", fmt.Errorf("debtest: unknown compression %q", method)
	}
	if err != nil {
		return nil, "", err
	}
	if _, err := w.Write(data); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), "." + method, nil
}

// Member is one member of an ar archive.
type Member struct {
	Name string
	Data []byte
}

// AR returns an ar archive of members, with names written in the given
// style ("gnu", "sysv" or "bsd"; "" means "gnu"). In the "gnu" style, names
// longer than 15 bytes go to a "//" long-name table.
func AR(style string, members []Member) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("!<arch>\n")
	hdr := func(name string, size int) {
		fmt.Fprintf(&buf, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 1700000000, 0, 0, "100644", size)
	}
	pad := func(n int) {
		if n%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	var table strings.Builder
	offsets := map[string]int{}
	if style == "" || style == "gnu" {
		for _, m := range members {
			if len(m.Name) > 15 {
				offsets[m.Name] = table.Len()
				table.WriteString(m.Name + "/\n")
			}
		}
		if table.Len() > 0 {
			hdr("//", table.Len())
			buf.WriteString(table.String())
			pad(table.Len())
		}
	}
	for _, m := range members {
		switch style {
		case "", "gnu":
			if off, ok := offsets[m.Name]; ok {
				hdr(fmt.Sprintf("/%d", off), len(m.Data))
			} else {
				hdr(m.Name+"/", len(m.Data))
			}
			buf.Write(m.Data)
			pad(len(m.Data))
		case "sysv":
			if len(m.Name) > 16 {
				return nil, fmt.Errorf("debtest: name %q too long for sysv ar", m.Name)
			}
			hdr(m.Name, len(m.Data))
			buf.Write(m.Data)
			pad(len(m.Data))
		case "bsd":
			hdr(fmt.Sprintf("#1/%d", len(m.Name)), len(m.Name)+len(m.Data))
			buf.WriteString(m.Name)
			buf.Write(m.Data)
			pad(len(m.Name) + len(m.Data))
		default:
			return nil, fmt.Errorf("debtest: unknown ar style %q", style)
		}
	}
	return buf.Bytes(), nil
}
