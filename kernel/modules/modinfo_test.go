package modules

import (
	"bytes"
	"debug/elf"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const vermagic = "vermagic=6.12.117+deb13-arm64 SMP mod_unload modversions aarch64"

func TestReadModInfo(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    Module
		wantErr string
	}{
		{
			name: "genet",
			data: elfModule(elf.EM_AARCH64,
				"license=GPL", "softdep=pre: mdio-bcm-unimac",
				"alias=platform:bcmgenet", "alias=of:N*T*Cbrcm,bcm2711-genet-v5C*",
				"firmware=brcm/foo.bin", "depends=libphy,of_mdio,fixed_phy",
				"name=genet", vermagic, "parm=skip_umac_reset:Skip UMAC reset step"),
			want: Module{
				Name:     "genet",
				Depends:  []string{"libphy", "of_mdio", "fixed_phy"},
				SoftPre:  []string{"mdio_bcm_unimac"},
				Aliases:  []string{"platform:bcmgenet", "of:N*T*Cbrcm,bcm2711-genet-v5C*"},
				Firmware: []string{"brcm/foo.bin"},
				Vermagic: vermagic[len("vermagic="):],
			},
		},
		{
			name: "empty depends, amd64",
			data: elfModule(elf.EM_X86_64, "depends=", "name=overlay", "alias=fs-overlay"),
			want: Module{Name: "overlay", Aliases: []string{"fs-overlay"}},
		},
		{
			name: "softdeps pre and post over several lines; names before pre: ignored like kmod",
			data: elfModule(elf.EM_AARCH64, "name=cifs", "softdep=gcm", "softdep=pre: crc32c post: foo-bar baz", "softdep=pre: ccm"),
			want: Module{Name: "cifs", SoftPre: []string{"crc32c", "ccm"}, SoftPost: []string{"foo_bar", "baz"}},
		},
		{
			name: "name normalised, depends with stray commas",
			data: elfModule(elf.EM_AARCH64, "name=mdio-bcm-unimac", "depends=,a-b,,c,"),
			want: Module{Name: "mdio_bcm_unimac", Depends: []string{"a_b", "c"}},
		},
		{
			name: "no name",
			data: elfModule(elf.EM_AARCH64, "depends=x"),
			want: Module{Depends: []string{"x"}},
		},
		{
			name: "signature appended after the ELF file",
			data: append(elfModule(elf.EM_AARCH64, "name=signed"), "\x00sig\x00~Module signature appended~\n"...),
			want: Module{Name: "signed"},
		},
		{name: "empty", data: nil, wantErr: "not an ELF file"},
		{name: "xz", data: compress(t, "x.xz", elfModule(elf.EM_AARCH64, "name=x")), wantErr: "not an ELF file"},
		{name: "truncated", data: elfModule(elf.EM_AARCH64, "name=x")[:40], wantErr: "malformed ELF file"},
		{name: "no .modinfo", data: bytes.Replace(elfModule(elf.EM_AARCH64, "name=x"), []byte(".modinfo"), []byte(".modinfx"), 1), wantErr: "no .modinfo section"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadModInfo(tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadModInfo() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ReadModInfo() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := ReadModInfo([]byte("#!/bin/sh\n")); !errors.Is(err, ErrNotELF) {
		t.Errorf("ReadModInfo(script) = %v, want ErrNotELF", err)
	}
}

func TestDecompress(t *testing.T) {
	plain := elfModule(elf.EM_AARCH64, "name=genet")
	for _, name := range []string{"genet.ko", "genet.ko.xz", "genet.ko.zst", "genet.ko.gz"} {
		t.Run(name, func(t *testing.T) {
			gotName, got, err := Decompress("kernel/x/"+name, compress(t, name, plain))
			if err != nil {
				t.Fatal(err)
			}
			if gotName != "kernel/x/genet.ko" {
				t.Errorf("plain name = %q, want kernel/x/genet.ko", gotName)
			}
			if !bytes.Equal(got, plain) {
				t.Errorf("decompressed %d bytes differ from the %d original bytes", len(got), len(plain))
			}
		})
	}
	for _, name := range []string{"bad.ko.xz", "bad.ko.zst", "bad.ko.gz"} {
		if _, _, err := Decompress(name, []byte("definitely not compressed data")); err == nil {
			t.Errorf("Decompress(%s, garbage) succeeded", name)
		}
	}
	// Truncated streams must fail, not return a short module.
	for _, name := range []string{"t.ko.xz", "t.ko.zst", "t.ko.gz"} {
		c := compress(t, name, plain)
		if _, _, err := Decompress(name, c[:len(c)-8]); err == nil {
			t.Errorf("Decompress(%s, truncated) succeeded", name)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"crc32c", "crc32c", true},
		{"crc32c", "crc32", false},
		{"fs_*", "fs_overlay", true},
		{"of:N*T*Cbrcm,bcm2711_genet_v5C*", "of:NethernetT(null)Cbrcm,bcm2711_genet_v5C", true},
		{"of:N*T*Cbrcm,bcm2711_genet_v5C*", "of:NethernetT(null)Cbrcm,bcm2711_genet_v5", false},
		{"of:N*T*Cbrcm,bcm2711_genet_v5C*", "of:NethernetT(null)Cbrcm,bcm2711_genet_v4C", false},
		{"*/x", "a/b/x", true}, // '*' matches '/', as fnmatch without FNM_PATHNAME
		{"pci:v00008086d*sv*", "pci:v00008086d00001234sv00000000", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"[ab]x", "bx", true},
		{"[a-c]x", "cx", true},
		{"[!a-c]x", "cx", false},
		{"[^a-c]x", "dx", true},
		{"[]]x", "]x", true},
		{"[abc", "[abc", true}, // unclosed bracket is literal
		{"**", "", true},
		{"*a*a*a*a*b", strings.Repeat("a", 40), false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
	if got, want := normalizeAlias("fs-over[a-z]lay-x"), "fs_over[a-z]lay_x"; got != want {
		t.Errorf("normalizeAlias = %q, want %q", got, want)
	}
}

func FuzzReadModInfo(f *testing.F) {
	f.Add(elfModule(elf.EM_AARCH64, "name=genet", "depends=libphy", "softdep=pre: a post: b", "alias=x*"))
	f.Add(elfModule(elf.EM_X86_64))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadModInfo(data)
		if err != nil {
			return
		}
		for _, d := range append(m.Depends, m.SoftPre...) {
			if d == "" || strings.Contains(d, "-") {
				t.Errorf("bad dependency name %q", d)
			}
		}
	})
}

func FuzzGlobMatch(f *testing.F) {
	f.Add("of:N*T*C[a-z]?x", "of:NfooTbarCqzx")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		globMatch(pattern, name)
		if !isPattern(name) && !globMatch(name, name) {
			t.Errorf("%q does not match itself", name)
		}
	})
}
