package tftp

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func localPath(p string) bool {
	if !filepath.IsLocal(p) || filepath.IsAbs(p) {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." || c == "" {
			return false
		}
	}
	return true
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"start4.elf", "start4.elf"},
		{"9ffefdef/start4.elf", "9ffefdef/start4.elf"},
		{"/start4.elf", "start4.elf"}, // one leading slash dropped, as tftpd-hpa -s
		{"overlays//vc4-kms-v3d.dtbo", "overlays/vc4-kms-v3d.dtbo"},
		{"./a/./b", "a/b"},
		{"a/", "a"},
		{`boot\pxelinux.0`, `boot\pxelinux.0`}, // backslash is a plain byte
		{"..foo", "..foo"},
		{"foo..", "foo.."},
		{"\xff\xfe", "\xff\xfe"},
		{"..", ""},
		{"../etc/passwd", ""},
		{"a/../b", ""},
		{"a/..", ""},
		{"/../x", ""},
		{"//etc/passwd", ""},
		{"/", ""},
		{"", ""},
		{".", ""},
		{"./", ""},
		{"a\nb", ""},
		{"a\x7fb", ""},
		{"a\tb", ""},
		{"a\x00b", ""},
	}
	for _, tt := range tests {
		got, err := cleanPath(tt.in)
		if tt.want == "" {
			if err == nil || !errors.Is(err, errBadPath) {
				t.Errorf("cleanPath(%q) = %q, %v; want errBadPath", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestOpenBeneath(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	writeFile(t, base, "secret", []byte("secret"))
	writeFile(t, root, "file", []byte("file"))
	writeFile(t, root, "boards/pi4/start4.elf", []byte("start4"))
	for _, l := range []struct{ target, name string }{
		{"boards/pi4", "9ffefdef"},                 // per-serial directory, relative: fine
		{"../file", "boards/up"},                   // relative, stays inside
		{"../secret", "rel-out"},                   // climbs out
		{"../..", "boards/root-parent"},            // a directory outside
		{filepath.Join(base, "secret"), "abs-out"}, // absolute, outside
		{filepath.Join(root, "file"), "abs-in"},    // absolute, inside
		{"loop", "loop"},
		{"nothing", "dangling"},
	} {
		if err := os.Symlink(l.target, filepath.Join(root, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		path string
		// The error expected per method; nil: opens, reads content.
		openat2, fallback error
		content           string
	}{
		{path: "file", content: "file"},
		{path: "9ffefdef/start4.elf", content: "start4"},
		{path: "boards/up", content: "file"},
		{path: "rel-out", openat2: errOutsideRoot, fallback: errOutsideRoot},
		{path: "boards/root-parent/secret", openat2: errOutsideRoot, fallback: errOutsideRoot},
		{path: "abs-out", openat2: errOutsideRoot, fallback: errOutsideRoot},
		// The documented difference: the kernel refuses every absolute
		// symlink under RESOLVE_BENEATH; the fallback follows one that
		// lands inside.
		{path: "abs-in", openat2: errOutsideRoot, content: "file"},
		{path: "missing", openat2: fs.ErrNotExist, fallback: fs.ErrNotExist},
		{path: "dangling", openat2: fs.ErrNotExist, fallback: fs.ErrNotExist},
		{path: "loop", openat2: syscall.ELOOP, fallback: errAny},
		{path: "boards", openat2: errNotRegular, fallback: errNotRegular},
		{path: "fifo", openat2: errNotRegular, fallback: errNotRegular},
		{path: "file/x", openat2: syscall.ENOTDIR, fallback: syscall.ENOTDIR},
	}
	for _, method := range []string{"openat2", "fallback"} {
		for _, tt := range tests {
			want := tt.openat2
			if method == "fallback" {
				want = tt.fallback
			}
			f, err := openBeneath(root, tt.path, method == "openat2")
			if want == nil {
				if err != nil {
					t.Errorf("%s %s: %v, want %q", method, tt.path, err, tt.content)
					continue
				}
				b, _ := io.ReadAll(f)
				f.Close()
				if string(b) != tt.content {
					t.Errorf("%s %s: read %q, want %q", method, tt.path, b, tt.content)
				}
				continue
			}
			if f != nil {
				f.Close()
			}
			if err == nil || (want != errAny && !errors.Is(err, want)) {
				t.Errorf("%s %s: got %v, want %v", method, tt.path, err, want)
			}
		}
	}
}

var errAny = errors.New("any error")
