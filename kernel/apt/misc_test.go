package apt

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/google/go-cmp/cmp"
)

// Results of `dpkg --compare-versions` (dpkg 1.21, Debian 12).
var versionTable = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "1.0-0", 0},
	{"1.0-0", "1.0", 0},
	{"0:1.0", "1.0", 0},
	{"1.0", "1.1", -1},
	{"1.2", "1.10", -1},
	{"1.10", "1.9", 1},
	{"1.0~rc1", "1.0", -1},
	{"1.0~~", "1.0~", -1},
	{"1.0~~a", "1.0~~", 1},
	{"1.0~", "1.0", -1},
	{"1.0", "1.0+b1", -1},
	{"1.0-1", "1.0-1+b1", -1},
	{"1.0-1~bpo12+1", "1.0-1", -1},
	{"1.0a", "1.0", 1},
	{"1.0a", "1.0+", -1}, // letters sort before non-letters
	{"1.0+", "1.0.", -1}, // '+' (43) < '.' (46)
	{"1:0.1", "2.0", 1},
	{"2:1.0", "10:0.1", -1},
	{"1.001", "1.1", 0},
	{"1.0-2", "1.0-10", -1},
	{"1.0-a", "1.0-1", 1}, // letters sort after the end of a part
	{"6.1.0-18", "6.1.0-9", 1},
	{"6.12.33-1", "6.12.9-1", 1},
	{"1:1.20230405-1", "1.20250430-4", 1},
	{"1.20250430-4", "1.20250430-4~deb13u1", 1},
	{"2.4.0-1", "2.4.0-1ubuntu1", -1},
	{"a", "b", -1},
	{"1.2.3-4-5", "1.2.3-4-4", 1}, // revision is after the last hyphen
	{"1:2:3", "1:2:4", -1},        // colons in upstream
	{"99999999999999999999", "99999999999999999998", 1},
	{"1.0", "1.0~", 1},
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range versionTable {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMirrorFromSources(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"one-line", map[string]string{
			"etc/apt/sources.list": `# deb http://commented.example.invalid/debian bookworm main
deb-src http://src.example.invalid/debian bookworm main
deb http://security.example.invalid/debian-security bookworm-security main
deb cdrom:[Debian GNU/Linux]/ bookworm main
deb file:/srv/mirror bookworm main
deb http://ubuntu.example.invalid/ubuntu jammy main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example.invalid/debian/ bookworm main # comment
deb http://second.example.invalid/debian bookworm main
`}, "http://mirror.example.invalid/debian"},
		{"options with spaces", map[string]string{
			"etc/apt/sources.list": "deb [ arch=arm64 ] https://mirror.example.invalid/debian trixie-updates main\n",
		}, "https://mirror.example.invalid/debian"},
		{"deb822", map[string]string{
			"etc/apt/sources.list":                           "# empty\n",
			"etc/apt/sources.list.d/a.list.disabled-by-farm": "deb http://disabled.example.invalid/debian bookworm main\n",
			"etc/apt/sources.list.d/b.disabled.sources":      "Types: deb\nURIs: http://disabled2.example.invalid/debian\nSuites: bookworm\nComponents: main\n",
			"etc/apt/sources.list.d/c.sources": `Types: deb
URIs: http://off.example.invalid/debian
Suites: bookworm
Components: main
Enabled: no

# the security archive
Types: deb
URIs: http://deb.example.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example.invalid/debian
Suites: bookworm

Types: deb
URIs: https://vendor.example.invalid/apt
Suites: cloud-sdk-bookworm nodistro
Components: main

Types: deb-src deb
URIs: ftp://ftp.example.invalid/debian http://deb.example.invalid/debian/
Suites: trixie trixie-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`,
			"etc/apt/sources.list.d/d.list": "deb http://later.example.invalid/debian bookworm main\n",
		}, "http://deb.example.invalid/debian"},
		{"list.d order", map[string]string{
			"etc/apt/sources.list.d/zz.sources": "Types: deb\nURIs: http://zz.example.invalid/debian\nSuites: sid\n",
			"etc/apt/sources.list.d/00.list":    "deb http://00.example.invalid/debian stable main\n",
		}, "http://00.example.invalid/debian"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			got, err := MirrorFromSources(root)
			if err != nil || got != tc.want {
				t.Errorf("MirrorFromSources = %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"etc/apt/sources.list":                "deb http://ubuntu.example.invalid/ubuntu jammy main\n",
		"etc/apt/sources.list.d/node.sources": "Types: deb\nURIs: https://node.example.invalid/node_20.x\nSuites: nodistro\n",
		"etc/apt/sources.list.d/sec.list":     "deb http://sec.example.invalid/debian-security trixie-security main\n",
	})
	_, err := MirrorFromSources(root)
	want := fmt.Sprintf("no Debian mirror found in %s/etc/apt/sources.list*: pass --apt-mirror URL", root)
	if err == nil || err.Error() != want {
		t.Errorf("MirrorFromSources = %v, want %q", err, want)
	}
	if _, err := MirrorFromSources(t.TempDir()); err == nil {
		t.Error("MirrorFromSources of an empty root succeeded")
	}
}

func TestEmbeddedKeyring(t *testing.T) {
	el, err := EmbeddedKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if len(el) == 0 {
		t.Fatal("embedded keyring has no keys")
	}
	for _, e := range el {
		id := e.PrimaryIdentity()
		if id == nil || !strings.Contains(id.Name, "Debian") {
			t.Errorf("unexpected key %X in embedded keyring", e.PrimaryKey.Fingerprint)
		}
	}
	all, err := LoadKeyring()
	if err != nil || len(all) < len(el) {
		t.Fatalf("LoadKeyring() = %d keys, %v; want >= %d", len(all), err, len(el))
	}
}

func TestLoadKeyring(t *testing.T) {
	k1, k2 := newKey(t, "One", 0), newKey(t, "Two", 0)
	dir := t.TempDir()
	var bin bytes.Buffer
	publicOnly(t, k1).Serialize(&bin)
	var asc bytes.Buffer
	w, _ := armor.Encode(&asc, openpgp.PublicKeyType, nil)
	publicOnly(t, k2).Serialize(w)
	publicOnly(t, k1).Serialize(w) // duplicate of the binary file
	w.Close()
	writeFiles(t, dir, map[string]string{"one.gpg": bin.String(), "two.asc": "\n" + asc.String(), "bad.gpg": "not a key"})

	el, err := LoadKeyring(filepath.Join(dir, "one.gpg"), filepath.Join(dir, "two.asc"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range el {
		names = append(names, strings.Fields(e.PrimaryIdentity().Name)[0])
	}
	if diff := cmp.Diff([]string{"One", "Two"}, names); diff != "" {
		t.Errorf("LoadKeyring (-want +got):\n%s", diff)
	}
	_, err = LoadKeyring(filepath.Join(dir, "bad.gpg"))
	wantErr(t, err, "bad.gpg", "not a usable OpenPGP keyring")
	_, err = LoadKeyring(filepath.Join(dir, "missing.gpg"))
	wantErr(t, err, "missing.gpg")
}

func TestReadParagraphs(t *testing.T) {
	in := "Package: a\nDescription: first\n second\n .\n  third\n\n\n# comment\nPACKAGE: b\r\nVersion: 1\n \nPackage: c\n"
	var got []paragraph
	err := readParagraphs(strings.NewReader(in), func(p paragraph) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []paragraph{
		{"package": "a", "description": "first\nsecond\n.\nthird"},
		{"package": "b", "version": "1"},
		{"package": "c"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{" leading continuation\n", "Package a\n", ": x\n", "Bad Key: x\n"} {
		if err := readParagraphs(strings.NewReader(bad), func(paragraph) error { return nil }); err == nil {
			t.Errorf("readParagraphs(%q) succeeded", bad)
		}
	}
}

// formatParagraph writes p in deb822 form, keys in sorted order.
func formatParagraph(p paragraph) string {
	var b strings.Builder
	for _, k := range sortedKeys(p) {
		lines := strings.Split(p[k], "\n")
		fmt.Fprintf(&b, "%s: %s\n", k, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, " %s\n", l)
		}
	}
	return b.String()
}

func FuzzReadParagraphs(f *testing.F) {
	f.Add("Package: raspi-firmware\nVersion: 1.2-3\nSize: 12\nSHA256: " + strings.Repeat("0", 64) + "\nDescription: x\n y\n .\n\nPackage: b\n")
	f.Add("Suite: stable\nSHA256:\n aa 1 main/x\n bb 2 main/y\n")
	f.Add("# c\n\n\n a\n")
	f.Add("A:\r\n\tb\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		var first []paragraph
		err := readParagraphs(strings.NewReader(in), func(p paragraph) error {
			for k := range p {
				if k == "" || strings.ContainsAny(k, " \t\n:") || k != strings.ToLower(k) {
					t.Fatalf("bad key %q from %q", k, in)
				}
			}
			first = append(first, p)
			return nil
		})
		// The Packages scanner must not fail in other ways than with an error.
		_, _ = parsePackages(strings.NewReader(in), "raspi-firmware", "arm64")
		_, _ = parseRelease([]byte(in))
		if err != nil {
			return
		}
		// Round trip: formatting and re-parsing gives the same paragraphs.
		var text strings.Builder
		for _, p := range first {
			text.WriteString(formatParagraph(p) + "\n")
		}
		var second []paragraph
		if err := readParagraphs(strings.NewReader(text.String()), func(p paragraph) error {
			second = append(second, p)
			return nil
		}); err != nil {
			t.Fatalf("re-parsing %q: %v", text.String(), err)
		}
		if diff := cmp.Diff(first, second); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", in, diff)
		}
	})
}

// sortedKeys returns the keys of m in order, for formatParagraph.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, tty: true, label: "x.deb", total: 4e6, start: time.Now().Add(-time.Second)}
	p.Write(make([]byte, 1e6))
	p.draw()
	if got := buf.String(); !strings.Contains(got, "\r\x1b[Kx.deb [=======                       ] 1.0/4.0 MB") || !strings.Contains(got, "MB/s") {
		t.Errorf("progress bar = %q", got)
	}
	buf.Reset()
	c := &Client{Progress: &buf}
	p = c.startProgress("y.deb", 2e6)
	p.Write(make([]byte, 2e6))
	p.finish(nil)
	if got := buf.String(); !strings.HasPrefix(got, "downloading y.deb (2.0 MB)\ndownloaded y.deb: 2.0 MB in ") || strings.Count(got, "\n") != 2 {
		t.Errorf("progress lines = %q", got)
	}
	var nilp *progress // Progress == nil: silent
	nilp.Write([]byte("x"))
	nilp.finish(nil)
}
