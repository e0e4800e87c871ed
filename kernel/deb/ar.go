package deb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// arMagic starts every ar(1) archive, and so every .deb.
const arMagic = "!<arch>\n"

const arHeaderSize = 60

// maxARNameTable bounds the GNU long-name table we are willing to hold in
// memory; a .deb never needs one at all.
const maxARNameTable = 1 << 20

// arReader reads the members of an ar(1) archive in order. It understands the
// common (System V/GNU) format, with "name/" names, the "//" long-name table
// and "/N" references into it, and the BSD "#1/N" inline long names.
type arReader struct {
	r       *bufio.Reader
	cur     io.Reader // remaining data of the current member
	pad     bool      // the current member is followed by one padding byte
	names   []byte    // GNU long-name table, if seen
	offset  int64     // bytes consumed, for error messages
	started bool
}

type arMember struct {
	Name string
	Size int64
}

var errNotAr = errors.New("not a Debian package (no !<arch> magic)")

func newARReader(r io.Reader) (*arReader, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errNotAr
		}
		return nil, err
	}
	if string(magic) != arMagic {
		return nil, errNotAr
	}
	return &arReader{r: br, offset: int64(len(arMagic))}, nil
}

// next advances to the next member and returns its header. The member's data
// can then be read from ar until io.EOF. At the end of the archive next
// returns io.EOF.
func (ar *arReader) next() (*arMember, error) {
	for {
		if err := ar.skipRest(); err != nil {
			return nil, err
		}
		var hdr [arHeaderSize]byte
		n, err := io.ReadFull(ar.r, hdr[:])
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("truncated ar member header at offset %d (%d of %d bytes)", ar.offset, n, arHeaderSize)
		}
		hdrOffset := ar.offset
		ar.offset += arHeaderSize
		if hdr[58] != '`' || hdr[59] != '\n' {
			return nil, fmt.Errorf("corrupt ar member header at offset %d (bad terminator %q)", hdrOffset, hdr[58:60])
		}
		sizeField := strings.TrimRight(string(hdr[48:58]), " ")
		size, err := strconv.ParseInt(sizeField, 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("corrupt ar member header at offset %d (bad size %q)", hdrOffset, sizeField)
		}
		rawName := strings.TrimRight(string(hdr[0:16]), " ")
		ar.cur = &memberReader{r: ar.r, left: size, n: &ar.offset}
		ar.pad = size%2 == 1
		ar.started = true

		var name string
		switch {
		case rawName == "/" || rawName == "/SYM64/":
			// Symbol table: never in a .deb, but harmless.
			continue
		case rawName == "//":
			if size > maxARNameTable {
				return nil, fmt.Errorf("ar long-name table at offset %d is too large (%d bytes)", hdrOffset, size)
			}
			tbl, err := io.ReadAll(ar.cur)
			if err != nil {
				return nil, fmt.Errorf("reading ar long-name table: %w", err)
			}
			if int64(len(tbl)) != size {
				return nil, fmt.Errorf("truncated ar long-name table at offset %d", hdrOffset)
			}
			ar.names = tbl
			continue
		case strings.HasPrefix(rawName, "#1/"):
			// BSD: the name is stored in front of the data and counted in size.
			nlen, err := strconv.ParseInt(rawName[3:], 10, 64)
			if err != nil || nlen < 0 || nlen > size || nlen > 4096 {
				return nil, fmt.Errorf("corrupt BSD ar name %q at offset %d", rawName, hdrOffset)
			}
			buf := make([]byte, nlen)
			if _, err := io.ReadFull(ar.cur, buf); err != nil {
				return nil, fmt.Errorf("truncated BSD ar name at offset %d", hdrOffset)
			}
			name = string(bytes.TrimRight(buf, "\x00"))
			size -= nlen
		case len(rawName) > 1 && rawName[0] == '/' && isDigits(rawName[1:]):
			// GNU: "/N" is an offset into the "//" table; entries end in "/\n".
			off, err := strconv.Atoi(rawName[1:])
			if err != nil || ar.names == nil || off >= len(ar.names) {
				return nil, fmt.Errorf("corrupt GNU ar long name %q at offset %d", rawName, hdrOffset)
			}
			rest := ar.names[off:]
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				rest = rest[:i]
			}
			name = strings.TrimSuffix(string(rest), "/")
		default:
			// GNU ends short names with "/"; plain System V does not.
			name = strings.TrimSuffix(rawName, "/")
		}
		return &arMember{Name: name, Size: size}, nil
	}
}

// Read reads the data of the current member.
func (ar *arReader) Read(p []byte) (int, error) {
	if ar.cur == nil {
		return 0, io.EOF
	}
	return ar.cur.Read(p)
}

// skipRest discards what is left of the current member and its padding.
func (ar *arReader) skipRest() error {
	if !ar.started {
		return nil
	}
	if ar.cur != nil {
		if _, err := io.Copy(io.Discard, ar.cur); err != nil {
			return err
		}
		ar.cur = nil
	}
	if ar.pad {
		ar.pad = false
		// A missing final padding byte is tolerated, as ar(1) does.
		if _, err := ar.r.ReadByte(); err == nil {
			ar.offset++
		}
	}
	return nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// memberReader reads exactly left bytes from r, counting them into *n, and
// reports io.ErrUnexpectedEOF if r ends first.
type memberReader struct {
	r    io.Reader
	left int64
	n    *int64
}

func (m *memberReader) Read(p []byte) (int, error) {
	if m.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > m.left {
		p = p[:m.left]
	}
	n, err := m.r.Read(p)
	m.left -= int64(n)
	*m.n += int64(n)
	if err == io.EOF {
		if m.left > 0 {
			return n, fmt.Errorf("ar member truncated (%d bytes missing): %w", m.left, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	if m.left == 0 && err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}
