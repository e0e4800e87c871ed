//go:build linux

package action

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ramboot/ramboot/bootspec"
)

const (
	recSHA  = "3f0c8a2b6f3c5d1e9a7b4c2d0e8f6a4b2c0d9e7f5a3b1c8d6e4f2a0b9c7d5e3f"
	recSHA2 = "0000000000000000000000000000000000000000000000000000000000000002"
)

func recSpec(t *testing.T, form string) bootspec.InstallSpec {
	t.Helper()
	s, err := bootspec.Parse(form)
	if err != nil {
		t.Fatal(err)
	}
	return s.Install
}

// What a record covers: the same image (digest; with sha256=none, URL) at
// exactly the generation asked: a record ahead of it (a tenant's) does not.
func TestRecordCovers(t *testing.T) {
	at := time.Date(2026, 12, 7, 13, 40, 0, 0, time.UTC)
	digest := &installRecord{Gen: 2, Image: "http://192.0.2.1:8080/images/d.img.zst", SHA256: recSHA, Disk: "/dev/vda", Time: at}
	none := &installRecord{Gen: 1, Image: "http://192.0.2.1:8080/images/d.img.zst", SHA256: "none", Disk: "/dev/vda", Time: at}
	for _, tc := range []struct {
		name string
		rec  *installRecord
		form string
		want bool
		why  string
	}{
		{"same generation", digest, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=" + recSHA + "&gen=2", true, ""},
		{"an older generation asked", digest, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=" + recSHA + "&gen=1", false, "generation 2, the install asks for 1"},
		{"no generation asked", digest, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=" + recSHA, false, "generation 2, the install asks for 0"},
		{"no generation asked, none recorded", &installRecord{Image: digest.Image, SHA256: recSHA}, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=" + recSHA, true, ""},
		{"the same digest at another URL", digest, "install:http://192.0.2.9/mirror/d.img.zst#sha256=" + recSHA + "&gen=2", true, ""},
		{"a new generation", digest, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=" + recSHA + "&gen=3", false, "generation 2, the install asks for 3"},
		{"another image", digest, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=" + recSHA2 + "&gen=2", false, "it holds sha256=" + recSHA},
		{"unchecked, the digest's record", digest, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=none&gen=2", false, "unchecked"},
		{"unchecked, same URL", none, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=none&gen=1", true, ""},
		{"unchecked, same URL with credentials", none, "install:http://u:p@192.0.2.1:8080/images/d.img.zst#sha256=none&gen=1", true, ""},
		{"unchecked, another URL", none, "install:http://192.0.2.1:8080/images/e.img.zst#sha256=none&gen=1", false, "unchecked"},
		{"a digest asked, the record unchecked", none, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=" + recSHA + "&gen=1", false, "it holds sha256=none"},
		{"no record", nil, "install:http://192.0.2.1:8080/images/d.img.zst#sha256=none", false, "no install record"},
	} {
		ok, why := tc.rec.covers(recSpec(t, tc.form))
		if ok != tc.want || !strings.Contains(why, tc.why) {
			t.Errorf("%s: covers = %v, %q; want %v, %q", tc.name, ok, why, tc.want, tc.why)
		}
	}
}

// A record written as an install writes it reads back from the
// partition, and the install it describes is covered; the image URL
// loses its credentials.
func TestRecordRoundTrip(t *testing.T) {
	for _, rel := range []string{recordOnRoot, recordOnBoot} {
		dir := t.TempDir()
		spec := recSpec(t, "install:http://user:secret@192.0.2.1:8080/images/d.img.zst#sha256="+recSHA+"&gen=4&then=local")
		want := newRecord(spec, "/dev/vda", time.Date(2026, 12, 7, 13, 40, 0, 123, time.UTC))
		if err := writeRecord(dir, rel, want); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, rel))
		if strings.Contains(string(b), "secret") || !strings.Contains(string(b), `"gen": 4`) {
			t.Errorf("%s: %s", rel, b)
		}
		got, path, err := readRecordIn(dir)
		if err != nil || path != rel {
			t.Fatalf("%s: read back from %q: %v", rel, path, err)
		}
		if d := cmp.Diff(&want, got); d != "" {
			t.Errorf("%s: read back (-want +got):\n%s", rel, d)
		}
		if ok, why := got.covers(spec); !ok {
			t.Errorf("%s: the install that wrote it is not covered: %s", rel, why)
		}
		if got.Image != "http://192.0.2.1:8080/images/d.img.zst" {
			t.Errorf("image %q, want the URL without credentials", got.Image)
		}
	}
}

// What a disk holds is read with care: a record that is not a regular
// file, is too large, is not JSON of a record, or points out of the
// partition is no record (an error), and the install goes on.
func TestReadRecordOdd(t *testing.T) {
	good := `{"gen": 1, "image": "http://h/i.img", "sha256": "none", "disk": "/dev/vda", "time": "2026-12-07T13:40:00Z"}`
	outside := filepath.Join(t.TempDir(), "outside.json")
	os.WriteFile(outside, []byte(good), 0o644)
	for _, tc := range []struct {
		name  string
		setup func(dir string) error
		want  string
	}{
		{"none", func(string) error { return nil }, ""},
		{"symlink out", func(dir string) error { return os.Symlink(outside, filepath.Join(dir, recordOnBoot)) }, "not a regular file"},
		{"fifo", func(dir string) error { return syscall.Mkfifo(filepath.Join(dir, recordOnBoot), 0o644) }, "not a regular file"},
		{"directory", func(dir string) error { return os.Mkdir(filepath.Join(dir, recordOnBoot), 0o755) }, "not a regular file"},
		{"large", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, recordOnBoot), []byte(good+strings.Repeat(" ", maxRecord)), 0o644)
		}, "more than"},
		{"not json", func(dir string) error { return os.WriteFile(filepath.Join(dir, recordOnBoot), []byte("gen=1"), 0o644) }, "invalid"},
		{"unknown field", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, recordOnBoot), []byte(strings.Replace(good, `"gen"`, `"generation"`, 1)), 0o644)
		}, "unknown field"},
		{"bad digest", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, recordOnBoot), []byte(strings.Replace(good, `"none"`, `"ABC"`, 1)), 0o644)
		}, "sha256"},
		{"negative generation", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, recordOnBoot), []byte(strings.Replace(good, `"gen": 1`, `"gen": -1`, 1)), 0o644)
		}, "generation"},
		{"a parent symlinked out", func(dir string) error {
			os.MkdirAll(filepath.Join(dir, "var/lib"), 0o755)
			od := t.TempDir()
			os.MkdirAll(filepath.Join(od, "ramboot"), 0o755)
			os.WriteFile(filepath.Join(od, "ramboot", "install.json"), []byte(good), 0o644)
			return os.Symlink(od, filepath.Join(dir, "var/lib/ramboot-x")) // and var/lib/ramboot -> outside
		}, ""},
	} {
		dir := t.TempDir()
		if err := tc.setup(dir); err != nil {
			t.Fatal(err)
		}
		if tc.name == "a parent symlinked out" {
			os.Symlink(filepath.Join(dir, "var/lib/ramboot-x"), filepath.Join(dir, "var/lib/ramboot"))
		}
		r, _, err := readRecordIn(dir)
		if r != nil {
			t.Errorf("%s: read a record: %+v", tc.name, r)
		}
		if tc.want == "" && err != nil && tc.name == "none" {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// The record's image is the URL as given, without credentials or the
// install settings.
func TestRecordImage(t *testing.T) {
	u, _ := url.Parse("https://op:pw@img.example.net/d.img.xz")
	got := recordImage(bootspec.InstallSpec{URL: u})
	if got != "https://img.example.net/d.img.xz" {
		t.Errorf("recordImage = %q", got)
	}
}
