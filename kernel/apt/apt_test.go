package apt

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ramboot/ramboot/kernel/deb"
)

func wantErr(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestHappyPath(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	c := f.client(t.TempDir())
	var progress bytes.Buffer
	c.Progress = &progress

	rel, err := c.Release(ctx, "trixie")
	if err != nil {
		t.Fatal(err)
	}
	if rel.Suite != "testing" || rel.Codename != "trixie" || rel.Dist != "trixie" || rel.Mirror != f.mirror || !rel.AcquireByHash {
		t.Errorf("Release = %+v", rel)
	}
	if !slices.Equal(rel.Components, []string{"main", "contrib", "non-free-firmware"}) || rel.Date.IsZero() || !rel.ValidUntil.IsZero() {
		t.Errorf("Release = %+v", rel)
	}
	if fi := rel.Files["non-free-firmware/binary-arm64/Packages.xz"]; fi.Size == 0 || len(fi.SHA256) != 64 {
		t.Errorf("Files = %v", rel.Files)
	}
	if _, ok := rel.Files["ignored"]; ok {
		t.Error("MD5Sum entries leaked into Files")
	}
	if !strings.Contains(rel.Signer, "Test Archive Key") {
		t.Errorf("Signer = %q", rel.Signer)
	}

	// Newest version by dpkg order: 1.10-1 > 1.10~rc1-1 > 1.9-1 (not 9.0-1, armhf).
	p, err := c.Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", "")
	if err != nil {
		t.Fatal(err)
	}
	want := Package{Name: "raspi-firmware", Version: "1.10-1", Architecture: "arm64", Suite: "trixie", Component: "non-free-firmware",
		Filename: "pool/non-free-firmware/r/raspi-firmware/raspi-firmware_1.10-1_arm64.deb",
		SHA256:   sha(f.debs["raspi-firmware_1.10-1"]), Size: int64(len(f.debs["raspi-firmware_1.10-1"]))}
	if *p != want {
		t.Errorf("Lookup = %+v\nwant %+v", *p, want)
	}
	path, err := c.Fetch(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, f.debs["raspi-firmware_1.10-1"]) {
		t.Fatalf("fetched file differs (%v)", err)
	}
	if filepath.Base(path) != want.SHA256+".deb" {
		t.Errorf("cache file %s not named by its SHA-256", path)
	}
	ctrl, err := deb.Control(path)
	if err != nil || ctrl["Version"] != "1.10-1" {
		t.Errorf("deb.Control = %v, %v", ctrl, err)
	}

	// Exact version.
	p, err = c.Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", "1.9-1")
	if err != nil || p.Version != "1.9-1" {
		t.Fatalf("Lookup 1.9-1 = %+v, %v", p, err)
	}

	// A cached, matching .deb is used without the network.
	n := len(f.requests())
	if _, err := c.Fetch(ctx, &want); err != nil {
		t.Fatal(err)
	}
	if len(f.requests()) != n {
		t.Errorf("cached Fetch made requests: %v", f.requests()[n:])
	}

	// FetchPackage across components; main is only reachable by hash, and
	// Architecture: all matches arm64.
	_, _, err = c.FetchPackage(ctx, "trixie", []string{"contrib", "main"}, "arm64", "firmware-doc", "")
	if err == nil {
		t.Fatalf("FetchPackage with a listed but missing contrib index succeeded")
	}
	p, path, err = c.FetchPackage(ctx, "trixie", []string{"non-free-firmware", "main"}, "arm64", "firmware-doc", "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Component != "main" || p.Architecture != "all" {
		t.Errorf("FetchPackage = %+v", p)
	}
	if _, err := os.Stat(path); err != nil {
		t.Error(err)
	}
	if !slices.ContainsFunc(f.requests(), func(r string) bool { return strings.Contains(r, "/by-hash/SHA256/") }) {
		t.Error("main index not fetched by hash")
	}
	out := progress.String()
	if !strings.Contains(out, "downloading raspi-firmware_1.10-1_arm64.deb") || !strings.Contains(out, "downloaded raspi-firmware_1.10-1_arm64.deb") {
		t.Errorf("progress output:\n%s", out)
	}
}

func TestPackagesIndexCachedByHash(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	c := f.client(t.TempDir())
	if _, err := c.Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", ""); err != nil {
		t.Fatal(err)
	}
	n := len(f.requests())
	if _, err := c.Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", ""); err != nil {
		t.Fatal(err)
	}
	// Only InRelease is fetched again.
	if r := f.requests()[n:]; len(r) != 1 || !strings.HasSuffix(r[0], "/InRelease") {
		t.Errorf("second Lookup requested %v, want only InRelease", r)
	}
}

func TestSignatureErrors(t *testing.T) {
	ctx := context.Background()
	other := newKey(t, "Other Key", 0)
	expired := newKey(t, "Expired Key", 2*time.Hour) // created an hour ago
	revoked := newKey(t, "Revoked Key", 0)
	if err := revoked.RevokeKey(packet.KeyCompromised, "test", nil); err != nil {
		t.Fatal(err)
	}

	t.Run("wrong key", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		c := f.client(t.TempDir())
		c.Keyring = openpgp.EntityList{publicOnly(t, other)}
		_, err := c.Release(ctx, "trixie")
		wantErr(t, err, "unknown keys", "NO_PUBKEY", f.mirror+"/dists/trixie/InRelease", "keyring")
	})
	t.Run("unsigned", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{unsigned: true})
		_, err := f.client(t.TempDir()).Release(ctx, "trixie")
		wantErr(t, err, "not clearsigned", "trixie", f.mirror)
	})
	t.Run("modified after signing", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		p := filepath.Join(f.root, "debian/dists/trixie/InRelease")
		b, _ := os.ReadFile(p)
		os.WriteFile(p, bytes.Replace(b, []byte("Codename: trixie"), []byte("Codename: trixia"), 1), 0o644)
		_, err := f.client(t.TempDir()).Release(ctx, "trixie")
		wantErr(t, err, "bad InRelease signature", "trixie")
	})
	t.Run("expired key", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{signers: []*openpgp.Entity{expired}})
		c := f.client(t.TempDir())
		c.Keyring = openpgp.EntityList{publicOnly(t, expired)}
		if _, err := c.Release(ctx, "trixie"); err != nil {
			t.Fatalf("key not yet expired: %v", err)
		}
		c.Now = func() time.Time { return time.Now().Add(3 * time.Hour) }
		_, err := c.Release(ctx, "trixie")
		wantErr(t, err, "expired")
	})
	t.Run("revoked key", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{signers: []*openpgp.Entity{revoked}})
		c := f.client(t.TempDir())
		c.Keyring = openpgp.EntityList{publicOnly(t, revoked)}
		_, err := c.Release(ctx, "trixie")
		wantErr(t, err, "revoked")
	})
	t.Run("any trusted signature suffices", func(t *testing.T) {
		// Signed by an unknown key, then an expired key, then the archive
		// key; only the last two are in the keyring.
		f := newFixture(t, fixtureOpts{})
		f2 := newFixture(t, fixtureOpts{signers: []*openpgp.Entity{other, expired, f.key}})
		c := f2.client(t.TempDir())
		c.Keyring = openpgp.EntityList{publicOnly(t, expired), publicOnly(t, f.key)}
		c.Now = func() time.Time { return time.Now().Add(3 * time.Hour) }
		rel, err := c.Release(ctx, "trixie")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(rel.Signer, "Test Archive Key") {
			t.Errorf("Signer = %q", rel.Signer)
		}
		c.Keyring = openpgp.EntityList{publicOnly(t, expired)}
		_, err = c.Release(ctx, "trixie")
		wantErr(t, err, "bad InRelease signature", "expired")
	})
}

func TestSuiteMismatch(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, err := f.client(t.TempDir()).Release(context.Background(), "bookworm")
	wantErr(t, err, `is for suite "testing" (codename "trixie"), not "bookworm"`)
	if _, err := f.client(t.TempDir()).Release(context.Background(), "testing"); err != nil {
		t.Errorf("Release by suite alias: %v", err)
	}
	_, err = f.client(t.TempDir()).Release(context.Background(), "forky")
	wantErr(t, err, `suite "forky" not found`, "404")
	_, err = f.client(t.TempDir()).Release(context.Background(), "../etc")
	wantErr(t, err, "invalid suite")
}

func TestValidUntil(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{validUntil: time.Now().Add(-time.Hour)})
	_, err := f.client(t.TempDir()).Release(ctx, "trixie")
	wantErr(t, err, "expired on", "Valid-Until", "trixie")

	// Still valid online; expired by the time the cache is used offline.
	f = newFixture(t, fixtureOpts{validUntil: time.Now().Add(24 * time.Hour)})
	cache := t.TempDir()
	c := f.client(cache)
	if _, err := c.Release(ctx, "trixie"); err != nil {
		t.Fatal(err)
	}
	c.Offline = true
	c.HTTP = &http.Client{Transport: noNetwork{t}}
	if _, err := c.Release(ctx, "trixie"); err != nil {
		t.Fatalf("offline before Valid-Until: %v", err)
	}
	c.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	_, err = c.Release(ctx, "trixie")
	wantErr(t, err, "Valid-Until")
}

func TestTamperedPackages(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	f.tamper("debian/dists/trixie/non-free-firmware/binary-arm64/Packages.xz")
	cache := t.TempDir()
	_, err := f.client(cache).Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", "")
	wantErr(t, err, "SHA-256 mismatch", "Packages.xz")
	left, _ := filepath.Glob(filepath.Join(cache, "apt", "indexes", "*"))
	if len(left) != 0 {
		t.Errorf("tampered index left in cache: %v", left)
	}

	// A different size is caught too.
	p := filepath.Join(f.root, "debian/dists/trixie/non-free-firmware/binary-arm64/Packages.xz")
	os.WriteFile(p, []byte("Package: raspi-firmware\nVersion: 99\n"), 0o644)
	_, err = f.client(cache).Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", "")
	wantErr(t, err, "expected", "Packages.xz")
}

func TestTamperedDeb(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	cache := t.TempDir()
	c := f.client(cache)
	p, err := c.Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", "")
	if err != nil {
		t.Fatal(err)
	}
	f.tamper("debian/" + p.Filename)
	_, err = c.Fetch(ctx, p)
	wantErr(t, err, "SHA-256 mismatch", "raspi-firmware 1.10-1")
	if left, _ := filepath.Glob(filepath.Join(cache, "apt", "debs", "*")); len(left) != 0 {
		t.Errorf("tampered .deb left in cache: %v", left)
	}

	// A corrupted cache file is replaced by a good download...
	f.write("debian/"+p.Filename, f.debs["raspi-firmware_1.10-1"])
	dest := filepath.Join(cache, "apt", "debs", p.SHA256+".deb")
	os.MkdirAll(filepath.Dir(dest), 0o755)
	os.WriteFile(dest, []byte("corrupt"), 0o644)
	if path, err := c.Fetch(ctx, p); err != nil || path != dest {
		t.Fatalf("Fetch over corrupt cache = %q, %v", path, err)
	}
	if b, _ := os.ReadFile(dest); !bytes.Equal(b, f.debs["raspi-firmware_1.10-1"]) {
		t.Error("corrupt cache file not replaced")
	}
	// ...and refused (and removed) offline.
	os.WriteFile(dest, bytes.Repeat([]byte("x"), int(p.Size)), 0o644)
	c.Offline = true
	_, err = c.Fetch(ctx, p)
	wantErr(t, err, "not in the cache", "run once without --offline")
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Error("corrupt cache file not removed")
	}

	// Unsafe names from an index are refused.
	bad := *p
	bad.Filename = "../../etc/passwd"
	_, err = c.Fetch(ctx, &bad)
	wantErr(t, err, "unsafe Filename")
}

func TestMissing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	c := f.client(t.TempDir())

	_, err := c.Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", "2.0-1")
	wantErr(t, err, `version "2.0-1" not found`, "available: 1.10-1, 1.10~rc1-1, 1.9-1", "pass one of these versions")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("error does not wrap ErrNotFound: %v", err)
	}
	_, err = c.Lookup(ctx, "trixie", "non-free-firmware", "arm64", "no-such-package", "")
	wantErr(t, err, `package "no-such-package" not found`, "trixie/non-free-firmware binary-arm64", "check the package name")
	_, err = c.Lookup(ctx, "trixie", "non-free", "arm64", "raspi-firmware", "")
	wantErr(t, err, "InRelease lists none", "components main contrib non-free-firmware")
	_, err = c.Lookup(ctx, "trixie", "contrib", "arm64", "raspi-firmware", "")
	wantErr(t, err, "missing on the mirror")

	_, _, err = c.FetchPackage(ctx, "trixie", []string{"main", "non-free"}, "arm64", "raspi-firmware", "1.9-1")
	wantErr(t, err, "not found in components main, non-free", `package "raspi-firmware" not found`)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("error does not wrap ErrNotFound: %v", err)
	}
	// Found in the second component.
	p, _, err := c.FetchPackage(ctx, "trixie", []string{"main", "non-free-firmware"}, "arm64", "raspi-firmware", "1.9-1")
	if err != nil || p.Version != "1.9-1" || p.Component != "non-free-firmware" {
		t.Errorf("FetchPackage = %+v, %v", p, err)
	}
}

func TestOffline(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	cache := t.TempDir()

	// Empty cache.
	off := f.client(cache)
	off.Offline = true
	off.HTTP = &http.Client{Transport: noNetwork{t}}
	_, err := off.Release(ctx, "trixie")
	wantErr(t, err, "offline", "InRelease", "not in the cache", "run once without --offline")

	// Fill the cache online.
	p, path, err := f.client(cache).FetchPackage(ctx, "trixie", []string{"non-free-firmware"}, "arm64", "raspi-firmware", "")
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Close()

	p2, path2, err := off.FetchPackage(ctx, "trixie", []string{"non-free-firmware"}, "arm64", "raspi-firmware", "")
	if err != nil {
		t.Fatalf("offline FetchPackage: %v", err)
	}
	if *p2 != *p || path2 != path {
		t.Errorf("offline FetchPackage = %+v %s, want %+v %s", p2, path2, p, path)
	}
	// An index that was never downloaded.
	_, err = off.Lookup(ctx, "trixie", "main", "arm64", "linux-image-test", "")
	wantErr(t, err, "offline", "Packages index main/binary-arm64/Packages.gz", "run once without --offline")
	// A package that was never downloaded.
	p3, err := off.Lookup(ctx, "trixie", "non-free-firmware", "arm64", "raspi-firmware", "1.9-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = off.Fetch(ctx, p3)
	wantErr(t, err, "raspi-firmware 1.9-1", "not in the cache", "run once without --offline")

	// Without a mirror, the one in the cache is used.
	noMirror := *off
	noMirror.Mirror = ""
	if p4, _, err := noMirror.FetchPackage(ctx, "trixie", []string{"non-free-firmware"}, "arm64", "raspi-firmware", ""); err != nil || *p4 != *p {
		t.Errorf("offline FetchPackage without mirror = %+v, %v", p4, err)
	}
	_, err = noMirror.Release(ctx, "bookworm")
	wantErr(t, err, "offline", "no InRelease of suite \"bookworm\"", "run once without --offline")

	// The cached InRelease is verified again.
	ir := filepath.Join(cache, "apt", "releases", mirrorKey(f.mirror), "trixie", "InRelease")
	b, err := os.ReadFile(ir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(ir, bytes.Replace(b, []byte("Suite: testing"), []byte("Suite: testinG"), 1), 0o644)
	_, err = off.Release(ctx, "trixie")
	wantErr(t, err, "bad InRelease signature", ir)
}

func TestClientConfigErrors(t *testing.T) {
	ctx := context.Background()
	_, err := (&Client{CacheDir: t.TempDir()}).Release(ctx, "trixie")
	wantErr(t, err, "no Debian mirror set", "--apt-mirror")
	_, err = (&Client{Mirror: "ftp://mirror.example.invalid/debian", CacheDir: t.TempDir()}).Release(ctx, "trixie")
	wantErr(t, err, "bad Debian mirror URL")

	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, _ := (&Client{}).cacheDir(); d != "/xdg/ramboot/apt" {
		t.Errorf("cacheDir with XDG_CACHE_HOME = %q", d)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, _ := (&Client{}).cacheDir(); d != "/home/u/.cache/ramboot/apt" {
		t.Errorf("cacheDir without XDG_CACHE_HOME = %q", d)
	}
}

func TestParseRelease(t *testing.T) {
	text := "Suite: stable\nCodename: bookworm\nDate: Sat, 9 Aug 2025 09:13:46 UTC\nValid-Until: Sat, 16 Aug 2025 09:13:46 +0000\nSHA256:\n " +
		strings.Repeat("ab", 32) + " 12 main/binary-arm64/Packages.xz\n"
	r, err := parseRelease([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if r.Date.Day() != 9 || r.ValidUntil.Day() != 16 || r.Files["main/binary-arm64/Packages.xz"].Size != 12 {
		t.Errorf("parseRelease = %+v", r)
	}
	for _, bad := range []string{
		"Suite: x\n",
		"Suite: x\nSHA256:\n abc 12 x\n",
		"Suite: x\nSHA256:\n " + strings.Repeat("ab", 32) + " -1 x\n",
		"Suite: x\nDate: yesterday\nSHA256:\n",
		"",
	} {
		if _, err := parseRelease([]byte(bad)); err == nil {
			t.Errorf("parseRelease(%q) succeeded", bad)
		}
	}
}
