package apt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// debianCodenames are the release codenames and suite aliases of the Debian
// archive. A sources entry is taken for a Debian archive when its suite is one
// of these, possibly with a suffix such as "-updates" or "-backports".
var debianCodenames = map[string]bool{
	"buzz": true, "rex": true, "bo": true, "hamm": true, "slink": true,
	"potato": true, "woody": true, "sarge": true, "etch": true, "lenny": true,
	"squeeze": true, "wheezy": true, "jessie": true, "stretch": true,
	"buster": true, "bullseye": true, "bookworm": true, "trixie": true,
	"forky": true, "duke": true, "sid": true,
	"stable": true, "testing": true, "unstable": true, "oldstable": true,
	"oldoldstable": true, "experimental": true, "rc-buggy": true,
}

// sourceEntry is one enabled "deb" source: a URI and its suites.
type sourceEntry struct {
	uri    string
	suites []string
}

// MirrorFromSources returns the URI of the first Debian archive configured in
// the apt sources under root: root/etc/apt/sources.list (one-line format),
// then root/etc/apt/sources.list.d/*.list (one-line) and *.sources (deb822),
// in name order, as apt reads them.
//
// An entry counts when it is an enabled "deb" (not "deb-src") entry with an
// http or https URI whose suites are Debian codenames or aliases (bookworm,
// trixie-updates, stable...). Security archives (URIs or suites ending in
// "-security") are skipped, and so are files whose name contains ".disabled".
// The result has no trailing slash, e.g. "http://mirror.example/debian".
func MirrorFromSources(root string) (string, error) {
	list := filepath.Join(root, "etc", "apt", "sources.list")
	files := []string{list}
	dir := list + ".d"
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading apt sources: %w", err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.Contains(n, ".disabled") {
			continue
		}
		if strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, filepath.Join(dir, n))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reading apt sources: %w", err)
		}
		var entries []sourceEntry
		if strings.HasSuffix(f, ".sources") {
			entries, err = parseDeb822Sources(data)
			if err != nil {
				return "", fmt.Errorf("%s: %w", f, err)
			}
		} else {
			entries = parseOneLineSources(data)
		}
		for _, e := range entries {
			if isDebianArchive(e) {
				return strings.TrimRight(e.uri, "/"), nil
			}
		}
	}
	return "", fmt.Errorf("no Debian mirror found in %s*: pass --apt-mirror URL", list)
}

// parseOneLineSources parses the classic format:
//
//	deb [ option=value ... ] uri suite [component...]
func parseOneLineSources(data []byte) []sourceEntry {
	var out []sourceEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			// Options, possibly "[arch=arm64 signed-by=x]" or "[ arch=arm64 ]".
			i := 0
			for i < len(f) && !strings.HasSuffix(f[i], "]") {
				i++
			}
			if i == len(f) {
				continue // unterminated options: apt rejects the line
			}
			f = f[i+1:]
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, sourceEntry{uri: f[0], suites: []string{f[1]}})
	}
	return out
}

// parseDeb822Sources parses the deb822 format of *.sources files.
func parseDeb822Sources(data []byte) ([]sourceEntry, error) {
	var out []sourceEntry
	err := readParagraphs(bytes.NewReader(data), func(p paragraph) error {
		if strings.EqualFold(strings.TrimSpace(p["enabled"]), "no") {
			return nil
		}
		isDeb := false
		for _, t := range strings.Fields(p["types"]) {
			if t == "deb" {
				isDeb = true
			}
		}
		if !isDeb {
			return nil
		}
		suites := strings.Fields(p["suites"])
		for _, u := range strings.Fields(p["uris"]) {
			out = append(out, sourceEntry{uri: u, suites: suites})
		}
		return nil
	})
	return out, err
}

func isDebianArchive(e sourceEntry) bool {
	u, err := url.Parse(e.uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "-security") {
		return false
	}
	if len(e.suites) == 0 {
		return false
	}
	for _, s := range e.suites {
		if strings.HasSuffix(s, "-security") || strings.HasSuffix(s, "/updates") {
			return false
		}
		base, _, _ := strings.Cut(s, "-")
		if s == "rc-buggy" {
			base = s
		}
		if !debianCodenames[base] {
			return false
		}
	}
	return true
}
