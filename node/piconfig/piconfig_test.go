package piconfig

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

// Raspberry Pi OS (bookworm)'s boot partition, shortened.
func piOS() fstest.MapFS {
	return fstest.MapFS{
		"config.txt": file(`# For more options and information see
# http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_fw_kms_setup=1
arm_64bit=1
disable_overscan=1
arm_boost=1

[cm4]
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
`),
		"cmdline.txt":     file("console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait\n"),
		"kernel8.img":     file("k8"),
		"kernel_2712.img": file("k2712"),
		"initramfs8":      file("i8"),
		"initramfs_2712":  file("i2712"),
	}
}

func TestRead(t *testing.T) {
	const cmd = "console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait"
	for _, tt := range []struct {
		name string
		fs   fstest.MapFS
		m    Model
		want Boot
	}{
		{"pi os on a pi 4", piOS(), Model{"pi4"}, Boot{Kernel: "kernel8.img", Initrd: "initramfs8", Cmdline: cmd}},
		{"pi os on a pi 5", piOS(), Model{"pi5"}, Boot{Kernel: "kernel_2712.img", Initrd: "initramfs_2712", Cmdline: cmd}},
		{"pi os on virt", piOS(), nil, Boot{Kernel: "kernel8.img", Initrd: "initramfs8", Cmdline: cmd}},
		{"sections", fstest.MapFS{
			"config.txt":  file("[pi3]\nkernel=wrong3.img\n[pi4]\nkernel=vmlinuz-pi4\ninitramfs initrd-pi4 followkernel\n[pi5]\nkernel=wrong5\n[all]\ncmdline=cl.txt\n[tryboot]\nkernel=wrong-tryboot\n[none]\nkernel=wrong-none\n"),
			"vmlinuz-pi4": file("k"), "initrd-pi4": file("i"), "cl.txt": file("root=/dev/sda2\nsecond line ignored\n"),
		}, Model{"pi4", "cm4"}, Boot{Kernel: "vmlinuz-pi4", Initrd: "initrd-pi4", Cmdline: "root=/dev/sda2"}},
		{"os_prefix and include", fstest.MapFS{
			"config.txt":         file("include extra.txt\n[all]\nos_prefix=slot-b/\n"),
			"extra.txt":          file("[pi4]\nkernel=kernel8.img\nauto_initramfs=1\n"),
			"slot-b/kernel8.img": file("k"), "slot-b/initramfs8": file("i"), "slot-b/cmdline.txt": file("root=LABEL=b"),
		}, Model{"pi4"}, Boot{Kernel: "slot-b/kernel8.img", Initrd: "slot-b/initramfs8", Cmdline: "root=LABEL=b"}},
		{"no cmdline.txt, no initramfs", fstest.MapFS{"config.txt": file("arm_64bit=1\n"), "kernel8.img": file("k")},
			Model{"pi3"}, Boot{Kernel: "kernel8.img"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(tt.fs, tt.m)
			if err != nil {
				t.Fatal(err)
			}
			got.Sources = nil
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		fs   fstest.MapFS
		m    Model
		want string
	}{
		{"not a pi partition", fstest.MapFS{"grub/grub.cfg": file("")}, nil, "no config.txt"},
		{"32-bit by setting", fstest.MapFS{"config.txt": file("arm_64bit=0\n"), "kernel7l.img": file("k")}, Model{"pi4"}, "arm_64bit=0"},
		{"32-bit by name", fstest.MapFS{"config.txt": file("kernel=kernel7l.img\n"), "kernel7l.img": file("k")}, Model{"pi4"}, "32-bit kernel"},
		{"32-bit default on a pi 3", fstest.MapFS{"config.txt": file(""), "kernel7.img": file("k")}, Model{"pi3"}, "arm_64bit=1"},
		{"kernel missing", fstest.MapFS{"config.txt": file("kernel=vmlinuz\n")}, Model{"pi4"}, "kernel vmlinuz, which is not on the partition"},
		{"initramfs missing", fstest.MapFS{"config.txt": file("initramfs initrd.img followkernel\n"), "kernel8.img": file("k")}, Model{"pi4"}, "initramfs initrd.img"},
		{"include loop", fstest.MapFS{"config.txt": file("include config.txt\n")}, Model{"pi4"}, "deeper than 8"},
		// Eight includes a level: 8^8 reads at the depth limit without a count.
		{"include fan-out", fstest.MapFS{
			"config.txt": file(strings.Repeat("include a.txt\n", 8)),
			"a.txt":      file(strings.Repeat("include b.txt\n", 8)),
			"b.txt":      file(strings.Repeat("include c.txt\n", 8)),
			"c.txt":      file(""),
		}, Model{"pi4"}, "more than 32 includes"},
		{"config.txt too large", fstest.MapFS{"config.txt": file(strings.Repeat("#\n", MaxConfig))}, Model{"pi4"}, "larger than 256 KB"},
		{"cmdline.txt too large", fstest.MapFS{"config.txt": file(""), "kernel8.img": file("k"), "cmdline.txt": file(strings.Repeat("x", MaxConfig+1))}, Model{"pi4"}, "larger than 256 KB"},
		{"include outside", fstest.MapFS{"config.txt": file("include ../../etc/shadow\n")}, Model{"pi4"}, "../../etc/shadow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(tt.fs, tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read = %v, want an error containing %q", err, tt.want)
			}
			if tt.name == "not a pi partition" && !errors.Is(err, ErrNotPi) {
				t.Errorf("want ErrNotPi, got %v", err)
			}
		})
	}
}

func TestModelFromCompatible(t *testing.T) {
	for in, want := range map[string]string{
		"raspberrypi,4-model-b\x00brcm,bcm2711\x00":        "pi4",
		"raspberrypi,400\x00brcm,bcm2711\x00":              "pi4 pi400",
		"raspberrypi,4-compute-module\x00brcm,bcm2711\x00": "pi4 cm4",
		"raspberrypi,5-model-b\x00brcm,bcm2712\x00":        "pi5",
		"linux,dummy-virt\x00":                             "",
	} {
		if got := strings.Join(ModelFromCompatible([]byte(in)), " "); got != want {
			t.Errorf("ModelFromCompatible(%q) = %q, want %q", in, got, want)
		}
	}
}
