package kimage

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func superblock(bytesUsed uint64, comp, major uint16) []byte {
	sb := make([]byte, 96)
	binary.LittleEndian.PutUint32(sb[0:], SquashfsMagic)
	binary.LittleEndian.PutUint16(sb[20:], comp)
	binary.LittleEndian.PutUint16(sb[28:], major)
	binary.LittleEndian.PutUint64(sb[40:], bytesUsed)
	return sb
}

func TestParseSquashfs(t *testing.T) {
	info, err := ParseSquashfs(superblock(123456, 6, 4))
	if err != nil || info.BytesUsed != 123456 || info.Compression != "zstd" {
		t.Fatalf("got %+v, %v", info, err)
	}
	if Kind(superblock(1000, 6, 4)) != Squashfs {
		t.Errorf("Kind does not see the squashfs magic")
	}
	for name, sb := range map[string][]byte{
		"short":     superblock(1000, 6, 4)[:50],
		"v3":        superblock(1000, 6, 3),
		"tiny":      superblock(10, 6, 4),
		"not magic": append([]byte("hsqX"), make([]byte, 92)...),
	} {
		if _, err := ParseSquashfs(sb); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// root lays out a small merged-/usr root with links of every kind.
func root(t *testing.T) string {
	t.Helper()
	r := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib/systemd", "usr/sbin", "etc"} {
		os.MkdirAll(filepath.Join(r, d), 0o755)
	}
	os.Symlink("usr/bin", filepath.Join(r, "bin"))
	os.Symlink("usr/sbin", filepath.Join(r, "sbin"))
	os.Symlink("usr/lib", filepath.Join(r, "lib"))
	os.Symlink("/lib/systemd/systemd", filepath.Join(r, "usr/sbin/init"))
	os.Symlink("../../../../../../etc/passwd", filepath.Join(r, "usr/sbin/escape"))
	os.Symlink("loop2", filepath.Join(r, "usr/sbin/loop1"))
	os.Symlink("loop1", filepath.Join(r, "usr/sbin/loop2"))
	return r
}

func TestResolveIn(t *testing.T) {
	r := root(t)
	os.WriteFile(filepath.Join(r, "usr/lib/systemd/systemd"), []byte("x"), 0o755)
	got, err := ResolveIn(r, "/sbin/init")
	if err != nil || got != filepath.Join(r, "usr/lib/systemd/systemd") {
		t.Errorf("ResolveIn /sbin/init = %q, %v", got, err)
	}
	// An absolute or climbing link stays inside the root.
	if got, err := ResolveIn(r, "/sbin/escape"); err == nil {
		t.Errorf("a link climbing out of the root resolved to %s (this machine's /etc/passwd?)", got)
	} else if !strings.Contains(err.Error(), "/etc/passwd") {
		t.Errorf("error %v does not name the path inside the root", err)
	}
	if _, err := ResolveIn(r, "/sbin/loop1"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("a link loop: %v", err)
	}
}

func TestCheckInit(t *testing.T) {
	const prog = "/bin/true" // a dynamically linked program of this machine
	elfBytes, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ReadELF(prog)
	if err != nil {
		t.Fatal(err)
	}
	if info.Interp == "" {
		t.Fatalf("%s has no PT_INTERP: want a dynamically linked program", prog)
	}
	arch := map[string]string{"amd64": "amd64", "arm64": "arm64"}[runtime.GOARCH]
	if info.Arch != arch {
		t.Fatalf("ReadELF of this test binary: %+v, want arch %s", info, arch)
	}
	other := "arm64"
	if arch == "arm64" {
		other = "amd64"
	}
	for _, tc := range []struct {
		name  string
		setup func(r string)
		arch  string
		want  string // "" for no error
	}{
		{"elf", func(r string) { os.WriteFile(filepath.Join(r, "usr/lib/systemd/systemd"), elfBytes, 0o755) }, arch, ""},
		{"missing", func(r string) {}, arch, "no /sbin/init in the new root"},
		{"not executable", func(r string) { os.WriteFile(filepath.Join(r, "usr/lib/systemd/systemd"), elfBytes, 0o644) }, arch, "is not executable"},
		{"wrong arch", func(r string) { os.WriteFile(filepath.Join(r, "usr/lib/systemd/systemd"), elfBytes, 0o755) }, other, "is an " + arch + " program; this machine is " + other},
		{"script, shell there", func(r string) {
			os.WriteFile(filepath.Join(r, "usr/lib/systemd/systemd"), []byte("#!/bin/sh\nexec foo\n"), 0o755)
			os.WriteFile(filepath.Join(r, "usr/bin/sh"), elfBytes, 0o755)
		}, arch, ""},
		{"script, no shell", func(r string) {
			os.WriteFile(filepath.Join(r, "usr/lib/systemd/systemd"), []byte("#!/bin/sh\nexec foo\n"), 0o755)
		}, arch, "its interpreter: no /bin/sh"},
		{"garbage", func(r string) { os.WriteFile(filepath.Join(r, "usr/lib/systemd/systemd"), []byte("MZ not elf"), 0o755) }, arch, "neither ELF nor a #! script"},
		{"directory", func(r string) { os.MkdirAll(filepath.Join(r, "usr/lib/systemd/systemd"), 0o755) }, arch, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := root(t)
			ld := filepath.Join(r, info.Interp)
			os.MkdirAll(filepath.Dir(ld), 0o755)
			os.WriteFile(ld, []byte("ld.so"), 0o755)
			tc.setup(r)
			err := CheckInit(r, "/sbin/init", tc.arch)
			if tc.want == "" {
				if err != nil {
					t.Errorf("CheckInit: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckInit: %v, want %q", err, tc.want)
			}
		})
	}
	// A dynamic program whose interpreter the root lacks.
	{
		r := root(t)
		os.WriteFile(filepath.Join(r, "usr/lib/systemd/systemd"), elfBytes, 0o755)
		if err := CheckInit(r, "/sbin/init", arch); err == nil || !strings.Contains(err.Error(), "needs the program interpreter "+info.Interp) {
			t.Errorf("no interpreter in the root: %v", err)
		}
	}
}
