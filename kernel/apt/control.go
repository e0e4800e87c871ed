package apt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLine bounds one line of a control file (Release, Packages, sources).
const maxLine = 4 << 20

// paragraph is one deb822 stanza. Keys are lower-cased, since field names
// are case-insensitive. A multi-line value keeps its lines, joined by "\n",
// without their leading whitespace; the first line is empty when the value
// starts on the line after the field name (as for SHA256 in a Release).
type paragraph map[string]string

// readParagraphs parses deb822 data (RFC 822 style stanzas separated by blank
// lines) and calls fn for each stanza in order. Lines starting with "#" are
// comments. fn's errors are returned unwrapped.
func readParagraphs(r io.Reader, fn func(paragraph) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	p := paragraph{}
	last := ""
	lineNo := 0
	flush := func() error {
		if len(p) == 0 {
			return nil
		}
		err := fn(p)
		p = paragraph{}
		last = ""
		return err
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(line) == "":
			if err := flush(); err != nil {
				return err
			}
		case line[0] == '#':
			// Comment.
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return fmt.Errorf("line %d: continuation line outside a field", lineNo)
			}
			p[last] += "\n" + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				return fmt.Errorf("line %d: malformed line %q (want Field: value)", lineNo, truncate(line, 80))
			}
			last = strings.ToLower(k)
			p[last] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", lineNo+1, maxLine)
		}
		return err
	}
	return flush()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
