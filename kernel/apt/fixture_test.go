package apt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ramboot/ramboot/kernel/deb/debtest"
)

// newKey generates an Ed25519 OpenPGP key (fast, unlike RSA). lifetime 0
// means no expiry.
func newKey(t testing.TB, name string, lifetime time.Duration) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "test", "archive@example.invalid", &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		KeyLifetimeSecs: uint32(lifetime / time.Second),
		Time:            func() time.Time { return time.Now().Add(-time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// publicOnly returns e without its private key, as in a real keyring.
func publicOnly(t testing.TB, e *openpgp.Entity) *openpgp.Entity {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	el, err := openpgp.ReadKeyRing(&buf)
	if err != nil || len(el) != 1 {
		t.Fatalf("re-reading public key: %v", err)
	}
	return el[0]
}

// clearsignText signs text with each of signers, in order.
func clearsignText(t testing.TB, text string, signers ...*openpgp.Entity) []byte {
	t.Helper()
	var keys []*packet.PrivateKey
	for _, s := range signers {
		keys = append(keys, s.PrivateKey)
	}
	var buf bytes.Buffer
	w, err := clearsign.EncodeMulti(&buf, keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type testPkg struct {
	name, version, arch, component string
}

// fixture is a small signed Debian archive served over HTTP on 127.0.0.1.
type fixture struct {
	t      *testing.T
	root   string // served directory; the mirror is srv.URL + "/debian"
	srv    *httptest.Server
	key    *openpgp.Entity
	mirror string

	mu   sync.Mutex
	reqs []string // request paths

	debs map[string][]byte // "name_version" -> .deb
}

type fixtureOpts struct {
	validUntil time.Time         // zero: none
	signers    []*openpgp.Entity // nil: the fixture key
	unsigned   bool
}

var fixturePkgs = []testPkg{
	{"raspi-firmware", "1.9-1", "arm64", "non-free-firmware"},
	{"raspi-firmware", "1.10-1", "arm64", "non-free-firmware"},
	{"raspi-firmware", "1.10~rc1-1", "arm64", "non-free-firmware"},
	{"raspi-firmware", "9.0-1", "armhf", "non-free-firmware"}, // other arch: ignored
	{"linux-image-test", "6.1.0-1", "arm64", "main"},
	{"firmware-doc", "1.0-1", "all", "main"},
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{t: t, root: t.TempDir(), key: newKey(t, "Test Archive Key", 0), debs: map[string][]byte{}}

	// Packages indexes: non-free-firmware as .xz only, main as .gz only.
	stanzas := map[string]*strings.Builder{}
	for _, p := range fixturePkgs {
		d := debtest.MustBuild(debtest.Package{
			Control:     map[string]string{"Package": p.name, "Version": p.version, "Architecture": p.arch},
			Files:       []debtest.File{{Name: "./boot/"}, {Name: "./boot/" + p.name + "-" + p.version, Body: []byte(p.name + " " + p.version)}},
			Compression: "xz",
		})
		f.debs[p.name+"_"+p.version] = d
		fn := fmt.Sprintf("pool/%s/%c/%s/%s_%s_%s.deb", p.component, p.name[0], p.name, p.name, p.version, p.arch)
		f.write("debian/"+fn, d)
		key := p.component + "/binary-" + p.arch
		if p.arch == "all" {
			key = p.component + "/binary-arm64"
		}
		if stanzas[key] == nil {
			stanzas[key] = &strings.Builder{}
		}
		fmt.Fprintf(stanzas[key], "Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: Test <t@example.invalid>\nDepends: a (>= 1), b | c\nFilename: %s\nSize: %d\nSHA256: %s\nDescription: test package\n multi-line description\n .\n end\n\n",
			p.name, p.version, p.arch, fn, len(d), sha(d))
	}
	files := map[string][]byte{}
	for key, sb := range stanzas {
		comp := "xz"
		if strings.HasPrefix(key, "main/") {
			comp = "gz"
		}
		z, ext, err := debtest.Compress(comp, []byte(sb.String()))
		if err != nil {
			t.Fatal(err)
		}
		files[key+"/Packages"+ext] = z
		if strings.HasPrefix(key, "main/") {
			// Only reachable by hash (Acquire-By-Hash), like current mirrors.
			f.write("debian/dists/trixie/"+key+"/by-hash/SHA256/"+sha(z), z)
			continue
		}
		f.write("debian/dists/trixie/"+key+"/Packages"+ext, z)
	}
	// A listed index that is missing on the mirror.
	files["contrib/binary-arm64/Packages.xz"] = []byte("missing")

	var rel strings.Builder
	now := time.Now().UTC()
	fmt.Fprintf(&rel, "Origin: Debian\nLabel: Debian\nSuite: testing\nCodename: trixie\nVersion: 13\n")
	fmt.Fprintf(&rel, "Date: %s\n", now.Add(-time.Minute).Format(time.RFC1123))
	if !o.validUntil.IsZero() {
		fmt.Fprintf(&rel, "Valid-Until: %s\n", o.validUntil.UTC().Format(time.RFC1123))
	}
	fmt.Fprintf(&rel, "Acquire-By-Hash: yes\nArchitectures: arm64 armhf\nComponents: main contrib non-free-firmware\nDescription: Debian x.y Testing distribution\n")
	rel.WriteString("MD5Sum:\n 00000000000000000000000000000000 1 ignored\nSHA256:\n")
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&rel, " %s %8d %s\n", sha(files[n]), len(files[n]), n)
	}
	var inRelease []byte
	switch {
	case o.unsigned:
		inRelease = []byte(rel.String())
	case o.signers != nil:
		inRelease = clearsignText(t, rel.String(), o.signers...)
	default:
		inRelease = clearsignText(t, rel.String(), f.key)
	}
	f.write("debian/dists/trixie/InRelease", inRelease)
	// A mirror serving trixie's InRelease as bookworm's.
	f.write("debian/dists/bookworm/InRelease", inRelease)
	// The suite alias.
	f.write("debian/dists/testing/InRelease", inRelease)

	fs := http.FileServer(http.Dir(f.root))
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.URL.Path)
		f.mu.Unlock()
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.mirror = f.srv.URL + "/debian"
	return f
}

func (f *fixture) write(rel string, data []byte) {
	f.t.Helper()
	p := filepath.Join(f.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// tamper flips one byte of a served file, keeping its size.
func (f *fixture) tamper(rel string) {
	f.t.Helper()
	p := filepath.Join(f.root, filepath.FromSlash(rel))
	b, err := os.ReadFile(p)
	if err != nil {
		f.t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(p, b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

func (f *fixture) client(cacheDir string) *Client {
	return &Client{
		Mirror:   f.mirror,
		Keyring:  openpgp.EntityList{publicOnly(f.t, f.key)},
		CacheDir: cacheDir,
		HTTP:     f.srv.Client(),
	}
}

// noNetwork is an http.RoundTripper that fails the test on any request.
type noNetwork struct{ t *testing.T }

func (n noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	n.t.Errorf("unexpected network request in offline mode: %s", r.URL)
	return nil, fmt.Errorf("no network in this test")
}
