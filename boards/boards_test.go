package boards

import (
	"errors"
	"strings"
	"testing"
)

func TestBuiltinBoards(t *testing.T) {
	names := Names()
	for _, want := range []string{"rpi4", "virt"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Fatalf("Names() = %v, want %s among them", names, want)
		}
	}
	for _, n := range names {
		b, err := Lookup(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if b.Name != n {
			t.Errorf("%s.yaml has name %q", n, b.Name)
		}
		if b.GOARCH() == "" || b.Kernel.Version == "" {
			t.Errorf("%s: no GOARCH or pinned kernel version", n)
		}
	}
}

func TestRpi4Templates(t *testing.T) {
	b, err := Lookup("rpi4")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := b.Render(b.ConfigTxt, Vars{Board: "rpi4", Version: "v9"})
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(cfg, "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{
		"arm_64bit=1", "kernel=Image", "initramfs rootfs.cpio.gz followkernel",
		"enable_uart=1", "armstub=bl31.bin", "enable_gic=1", "gpu_mem=16",
		"device_tree=bcm2711-rpi-4-b.dtb",
	} {
		if !lines[want] {
			t.Errorf("config.txt lacks line %q:\n%s", want, cfg)
		}
	}
	if !strings.Contains(cfg, "ramboot rpi4 v9") {
		t.Errorf("config.txt header not rendered:\n%s", cfg)
	}
	cmd, err := b.Render(b.CmdlineTxt, Vars{Board: "rpi4"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"console=ttyS1,115200", "console=tty1", "ramboot.board=rpi4"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("cmdline.txt %q lacks %q", cmd, want)
		}
	}
	if strings.Contains(cmd, "\n") {
		t.Errorf("cmdline.txt must be one line: %q", cmd)
	}
	// Every fetched file is produced by the profile.
	made := map[string]bool{"Image": true, "rootfs.cpio.gz": true, "config.txt": true, "cmdline.txt": true}
	for _, d := range b.Kernel.DTBs {
		made[d.To] = true
	}
	for _, fw := range b.Firmware {
		for _, f := range fw.Files {
			made[f.To] = true
		}
	}
	for _, f := range b.Fetched {
		if !made[f] {
			t.Errorf("fetched lists %s, which the profile does not produce", f)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	_, err := Lookup("rpi9")
	if !errors.Is(err, ErrUnknownBoard) || !strings.Contains(err.Error(), "rpi4") || !strings.Contains(err.Error(), "virt") {
		t.Fatalf("unknown board error should list the boards: %v", err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "name: x\narch: arm64\nkernal: {}\n", "kernal"},
		{"bad arch", "name: x\narch: sparc\nkernel: {package: p, suite: s}\n", "arch \"sparc\""},
		{"no kernel", "name: x\narch: arm64\n", "kernel: package and suite are required"},
		{"escape", "name: x\narch: arm64\nkernel: {package: p, suite: s, dtbs: [{from: a, to: ../a}]}\n", "plain relative path"},
		{"twice", "name: x\narch: arm64\nkernel: {package: p, suite: s, dtbs: [{from: a, to: a}, {from: b, to: a}]}\n", "written twice"},
		{"bad template", "name: x\narch: arm64\nkernel: {package: p, suite: s}\nconfig_txt: '{{.Nope'\n", "config_txt"},
		{"bad compress", "name: x\narch: arm64\nkernel: {package: p, suite: s, compress: lz4}\n", "gzip or none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "test.yaml") {
				t.Fatalf("err = %v, want it to name test.yaml and %q", err, tc.want)
			}
		})
	}
	b, _ := Parse("t.yaml", []byte("name: x\narch: arm64\nkernel: {package: p, suite: s}\ncmdline_txt: '{{.Nope}}'\n"))
	if _, err := b.Render(b.CmdlineTxt, Vars{}); err == nil {
		t.Fatal("template with an unknown field rendered without error")
	}
}

func TestHTTPBoot(t *testing.T) {
	if got, want := strings.Join(HTTPBootNames(), ","), "cm4,rpi4,rpi5"; got != want {
		t.Errorf("HTTPBootNames() = %s, want %s", got, want)
	}
	b, err := Parse("x.yaml", []byte("name: x\narch: arm64\nkernel: {suite: trixie, package: linux-image-arm64}\nhttp_boot: true\n"))
	if err != nil || !b.HTTPBoot {
		t.Errorf("http_boot: true: %v, HTTPBoot %v", err, b != nil && b.HTTPBoot)
	}
	if _, err := Parse("x.yaml", []byte("name: x\narch: arm64\nkernel: {suite: trixie, package: linux-image-arm64}\nhttp_boot: yes please\n")); err == nil {
		t.Error("http_boot: yes please parsed")
	}
}
