package bootcfg

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ramboot/ramboot/node/bootfs"
)

// tree makes a partition directory "part" next to a file "outside"
// holding OUTSIDE, from files (name: content; "->target" makes a
// symbolic link, "|fifo" a FIFO, "+N" a sparse file of N MB).
func tree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "outside"), []byte("OUTSIDE"), 0o644); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(dir, "part")
	for name, content := range files {
		p := filepath.Join(part, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(strings.TrimPrefix(content, "->"), p)
		case content == "|fifo":
			err = syscall.Mkfifo(p, 0o644)
		case strings.HasPrefix(content, "+"):
			var n int64
			for _, c := range content[1:] {
				n = n*10 + int64(c-'0')
			}
			if err = os.WriteFile(p, nil, 0o644); err == nil {
				err = os.Truncate(p, n<<20)
			}
		default:
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	return part
}

func find(t testing.TB, part string) (*Boot, error) {
	t.Helper()
	p, err := bootfs.Open(part, 64<<20, 96<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	return Find(context.Background(), p, nil)
}

func TestFind(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  Boot
	}{
		{"grub", map[string]string{
			"boot/grub/grub.cfg": "set default=0\nmenuentry 'Debian GNU/Linux' {\n linux /boot/vmlinuz root=UUID=x ro quiet\n initrd /boot/initrd.img\n}\n",
			"boot/vmlinuz":       "K", "boot/initrd.img": "I",
		}, Boot{How: "grub", Label: "Debian GNU/Linux", Kernel: []byte("K"), Initrd: []byte("I"), Cmdline: "root=UUID=x ro quiet"}},
		{"grub configfile", map[string]string{
			"EFI/debian/grub.cfg": "configfile /boot/grub/main.cfg\n",
			"boot/grub/main.cfg":  "menuentry 'x' {\n linux /vmlinuz a=b\n}\n",
			"vmlinuz":             "->boot/vmlinuz-6.1", "boot/vmlinuz-6.1": "K61",
		}, Boot{How: "grub", Label: "x", Kernel: []byte("K61"), Cmdline: "a=b"}},
		{"bls", map[string]string{
			"loader/entries/a-6.1.conf": "title Fedora\nversion 6.1\nlinux /vmlinuz-6.1\ninitrd /initramfs-6.1.img\noptions root=UUID=y\noptions ro\n",
			"loader/entries/a-6.2.conf": "title Fedora\nversion 6.2\nlinux /vmlinuz-6.2\noptions root=UUID=y\n",
			"loader/loader.conf":        "default a-6.1\n",
			"vmlinuz-6.1":               "K1", "initramfs-6.1.img": "I1", "vmlinuz-6.2": "K2",
		}, Boot{How: "bls", Label: "Fedora 6.1", Kernel: []byte("K1"), Initrd: []byte("I1"), Cmdline: "root=UUID=y ro"}},
		{"bls, highest id", map[string]string{
			"boot/loader/entries/a-6.1.conf": "linux /boot/vmlinuz-6.1\n",
			"boot/loader/entries/a-6.2.conf": "linux /boot/vmlinuz-6.2\ninitrd /boot/i1\ninitrd /boot/i2\n",
			"boot/vmlinuz-6.1":               "K1", "boot/vmlinuz-6.2": "K2", "boot/i1": "A", "boot/i2": "B",
		}, Boot{How: "bls", Label: "a-6.2", Kernel: []byte("K2"), Initrd: append(append([]byte("A"), make([]byte, 511)...), 'B')}},
		{"extlinux", map[string]string{
			"extlinux/extlinux.conf": "default l\nlabel l\n kernel ../vmlinuz\n initrd ../initrd\n append root=/dev/vda2\n",
			"vmlinuz":                "K", "initrd": "I",
		}, Boot{How: "syslinux", Label: "l", Kernel: []byte("K"), Initrd: []byte("I"), Cmdline: "root=/dev/vda2"}},
		{"config.txt", map[string]string{
			"config.txt": "os_prefix=b/\n", "b/kernel8.img": "K8", "b/cmdline.txt": "root=/dev/mmcblk0p2\n",
		}, Boot{How: "config.txt", Label: "b/kernel8.img", Kernel: []byte("K8"), Cmdline: "root=/dev/mmcblk0p2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := find(t, tree(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, *got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestFindHostile: each way a disk's configuration reaches outside its
// partition, or makes PID 1 read without end, is refused with a reason.
func TestFindHostile(t *testing.T) {
	grubEntry := func(linux string) string { return "menuentry 'x' {\n linux " + linux + "\n}\n" }
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"grub linux ../", map[string]string{"boot/grub/grub.cfg": grubEntry("../../../../../../../../outside")}, "outside the partition"},
		{"grub linux /dev/zero", map[string]string{"boot/grub/grub.cfg": grubEntry("../../../../../../../../../../dev/zero")}, "outside the partition"},
		{"grub linux file URL", map[string]string{"boot/grub/grub.cfg": grubEntry("file:///dev/zero")}, "outside the partition"},
		{"grub linux http", map[string]string{"boot/grub/grub.cfg": grubEntry("http://192.0.2.1/k")}, "no such scheme"},
		{"grub kernel symlink out", map[string]string{"boot/grub/grub.cfg": grubEntry("/vmlinuz"), "vmlinuz": "->../outside"}, "outside the partition"},
		{"grub kernel absolute symlink", map[string]string{"boot/grub/grub.cfg": grubEntry("/vmlinuz"), "vmlinuz": "->/dev/zero"}, "outside the partition"},
		{"grub kernel a fifo", map[string]string{"boot/grub/grub.cfg": grubEntry("/vmlinuz"), "vmlinuz": "|fifo"}, "not a regular file"},
		{"grub kernel huge", map[string]string{"boot/grub/grub.cfg": grubEntry("/vmlinuz"), "vmlinuz": "+2048"}, "too large"},
		{"grub.cfg huge", map[string]string{"boot/grub/grub.cfg": "+1024"}, "too large"},
		{"grub configfile loop", map[string]string{"boot/grub/grub.cfg": "configfile /boot/grub/grub.cfg\n"}, "too many configuration files"},
		{"grub configfile out", map[string]string{"boot/grub/grub.cfg": "configfile ../../../../../../../outside\n"}, "outside the partition"},
		{"grub.cfg a symlink out", map[string]string{"boot/grub/grub.cfg": "->../../../outside"}, "outside the partition"},
		{"syslinux include loop", map[string]string{"extlinux/extlinux.conf": "include extlinux.conf\nlabel l\n kernel /k\n", "k": "K"}, "too many configuration files"},
		{"syslinux initrds too large together", map[string]string{"syslinux.cfg": "label l\n kernel /k\n initrd /i,/i,/i\n", "k": "K", "i": "+40"}, "too large"},
		{"bls linux ../", map[string]string{"loader/entries/a.conf": "linux /../../../../../../dev/zero\n"}, "outside the partition"},
		{"bls linux symlink out", map[string]string{"loader/entries/a.conf": "linux /k\n", "k": "->/dev/zero"}, "outside the partition"},
		{"bls entry huge", map[string]string{"loader/entries/a.conf": "+1024"}, "too large"},
		{"bls entries a symlink out", map[string]string{"loader/entries": "->/etc"}, "outside the partition"},
		{"config.txt include loop", map[string]string{"config.txt": "include a.txt\ninclude a.txt\n", "a.txt": "include config.txt\ninclude config.txt\n"}, "includes"},
		{"config.txt kernel out", map[string]string{"config.txt": "os_prefix=../\n"}, "not on the partition"},
		{"config.txt kernel symlink out", map[string]string{"config.txt": "", "kernel8.img": "->../outside"}, "not on the partition"},
		{"config.txt huge", map[string]string{"config.txt": "+1024"}, "larger than 256 KB"},
		{"config.txt a fifo", map[string]string{"config.txt": "|fifo"}, "not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := find(t, tree(t, tt.files))
			if err == nil {
				t.Fatalf("Find = %s %q, kernel %q; want an error containing %q", b.How, b.Label, b.Kernel[:min(len(b.Kernel), 16)], tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Find: %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestFindNone(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"empty":            {},
		"data":             {"home/user/notes": "x"},
		"grub, other part": {"EFI/debian/grub.cfg": "search.fs_uuid 1234 root\nconfigfile ($root)/boot/grub/grub.cfg\n"},
	} {
		if _, err := find(t, tree(t, files)); !errors.Is(err, ErrNone) {
			t.Errorf("%s: Find = %v, want ErrNone", name, err)
		}
	}
}

// check is what every fuzz target requires of a result: nothing from
// outside the partition, nothing over the bounds.
func check(t *testing.T, b *Boot, err error) {
	if errors.Is(err, ErrParserPanic) {
		t.Fatal(err)
	}
	if err != nil {
		return
	}
	if bytes.Contains(b.Kernel, []byte("OUTSIDE")) || bytes.Contains(b.Initrd, []byte("OUTSIDE")) {
		t.Fatalf("%s %q: read a file outside the partition", b.How, b.Label)
	}
	if len(b.Kernel) > 64<<20 || len(b.Initrd) > 64<<20 {
		t.Fatalf("%s %q: a file over the bound", b.How, b.Label)
	}
}

// files every fuzzed partition has besides its configuration: a kernel,
// an initramfs, links out and a FIFO.
var fuzzFiles = map[string]string{
	"vmlinuz": "K", "boot/vmlinuz": "K", "initrd.img": "I", "boot/initrd.img": "I",
	"out": "->../outside", "abs": "->/etc/passwd", "fifo": "|fifo",
}

// fuzzTree is fuzzFiles and the configuration name, written as it is.
func fuzzTree(t *testing.T, name, config string) string {
	part := tree(t, fuzzFiles)
	p := filepath.Join(part, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return part
}

func FuzzGrub(f *testing.F) {
	for _, s := range []string{
		"set default=0\nmenuentry 'Debian' {\n linux /boot/vmlinuz root=UUID=x ro\n initrd /boot/initrd.img\n}\n",
		"menuentry 'x' {\n linux ../../../../dev/zero\n}\n",
		"menuentry 'x' {\n linux /out\n initrd /fifo\n}\n",
		"configfile /boot/grub/grub.cfg\n",
		"search --no-floppy --fs-uuid --set=root 1234\nblscfg\nmenuentry x {\nlinux16 /abs \\xff\n}\n",
		"menuentry 'm' {\n multiboot /vmlinuz\n module /initrd.img\n}\n",
		"menuentry 'd' {\n linux /vmlinuz\n devicetree ../outside\n}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, config string) {
		b, err := find(t, fuzzTree(t, "boot/grub/grub.cfg", config))
		check(t, b, err)
	})
}

func FuzzSyslinux(f *testing.F) {
	for _, s := range []string{
		"default l\nlabel l\n kernel /vmlinuz\n initrd /initrd.img\n append root=/dev/vda2\n",
		"include extlinux.conf\n",
		"label l\n kernel ../../../../dev/zero\n append initrd=/out\n",
		"label l\n linux /vmlinuz\n initrd /initrd.img,/fifo,/abs\n fdt /out\n",
		"label m\n kernel mboot.c32\n append /vmlinuz --- /initrd.img\nmenu label M\nmenu default\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, config string) {
		b, err := find(t, fuzzTree(t, "extlinux/extlinux.conf", config))
		check(t, b, err)
	})
}

func FuzzBLS(f *testing.F) {
	for _, s := range []string{
		"title Fedora\nversion 6.1\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=UUID=y ro\n",
		"linux /../../../../dev/zero\n",
		"linux /out\ninitrd /abs\ninitrd /fifo\n",
		"linux\t/vmlinuz\noptions $kernelopts\n",
		"efi /EFI/x.efi\ndevicetree /x.dtb\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		if e, err := ParseBLSEntry("a", []byte(entry)); err == nil && e.Linux == "" {
			t.Fatal("ParseBLSEntry accepted an entry without a kernel")
		}
		b, err := find(t, fuzzTree(t, "loader/entries/a.conf", entry))
		check(t, b, err)
	})
}

// TestSyslinuxInitrdsRemoved: the temporary file u-root's syslinux
// parser joins initrds in does not outlive Find.
func TestSyslinuxInitrdsRemoved(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	b, err := find(t, tree(t, map[string]string{"syslinux.cfg": "label l\n kernel /k\n initrd /i,/i\n", "k": "K", "i": "I"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]byte("I"), make([]byte, 511)...), 'I'); !bytes.Equal(b.Initrd, want) {
		t.Errorf("initrd %q, want I, padding, I", b.Initrd)
	}
	if m, _ := filepath.Glob(filepath.Join(os.TempDir(), "*")); len(m) != 0 {
		t.Errorf("left behind: %v", m)
	}
}
