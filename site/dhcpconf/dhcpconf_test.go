package dhcpconf

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/site/inventory"
)

// testNodes has a Pi 4 (mac and serial, fixed address), a Pi 3, a PC with
// a per-node template, a serial-only Pi and defaults.
const testNodes = `defaults:
  option224: "nfs://{{.Server}}/srv/nfs/rack?vers=3&overlay"
nodes:
  - mac: dc:a6:32:01:36:c2
    serial: 9ffefdef
    hostname: pi4-01
    address: 192.0.2.101
  - mac: b8:27:eb:11:22:33
    hostname: pi3-01
    address: 192.0.2.102
    option224: shell
  - mac: 52:54:00:12:34:56
    hostname: pc-01
    option224: 'http://{{.Server}}:8080/img/{{.MACHyphen}}.squashfs "quoted"'
  - serial: 1234abcd
    hostname: pi4-02
`

// dnsmasqMenu is option 43 as dnsmasq 2.90 sends it for
// pxe-service=0,"Raspberry Pi Boot" (captured, see notes/rpi-netboot.md).
const dnsmasqMenu = "0601030a0400505845091400001152617370626572727920506920426f6f74ff"

func gen(t *testing.T, format string, full bool) string {
	return genIf(t, format, full, "eth1")
}

func genIf(t *testing.T, format string, full bool, iface string) string {
	t.Helper()
	return genPXE(t, format, full, iface, false)
}

func genPXE(t *testing.T, format string, full bool, iface string, pxelinux bool) string {
	t.Helper()
	inv, err := inventory.Parse([]byte(testNodes))
	if err != nil {
		t.Fatal(err)
	}
	ip, n, err := ParseServer("192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Format: format, Inventory: inv, Source: "nodes.yaml", Server: ip, Net: n, Interface: iface, PXELinux: pxelinux}
	if full {
		if o.From, o.To, err = ParseRange("192.0.2.150-192.0.2.199", ip, n); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := Generate(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestPiMenuIsDnsmasqs(t *testing.T) {
	if got := hex.EncodeToString(dhcp.PiMenu("Raspberry Pi Boot")); got != dnsmasqMenu {
		t.Fatalf("PiMenu = %s, dnsmasq sends %s", got, dnsmasqMenu)
	}
}

func wantAll(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

func wantNone(t *testing.T, out string, bad ...string) {
	t.Helper()
	for _, w := range bad {
		if strings.Contains(out, w) {
			t.Errorf("output has %q", w)
		}
	}
}

func TestKeaContent(t *testing.T) {
	out := gen(t, "kea", true)
	wantAll(t, out,
		`"option-def": [ { "name": "ramboot-224", "code": 224, "type": "string" } ]`,
		`"interfaces": [ "eth1" ]`,
		`"subnet": "192.0.2.0/24"`,
		`"pool": "192.0.2.150 - 192.0.2.199"`,
		// Pi dialect, matched by option 97 or MAC+vendor class, never 93 alone.
		`substring(option[97].hex,0,5) == 0x0052506934`,
		`substring(option[97].hex,0,5) == 0x0052506935`,
		`substring(pkt4.mac,0,3) == 0xdca632`,
		`"data": "`+strings.ToUpper(dnsmasqMenu)+`", "always-send": true`,
		`"data": "`+strings.ToUpper(hex.EncodeToString(dhcp.PiMenu(dhcp.Pi3Menu)))+`"`,
		`{ "name": "vendor-class-identifier", "data": "PXEClient", "always-send": true }`,
		`"next-server": "192.0.2.10"`,
		`"boot-file-name": "undionly.kpxe"`,
		`"boot-file-name": "snponly.efi"`,
		`"boot-file-name": "http://192.0.2.10:8080/boot/${mac:hexhyp}.ipxe?arch=amd64"`,
		`option[77].hex == 'iPXE'`,
		// Per-host 224 and the default, always sent.
		`"hw-address": "dc:a6:32:01:36:c2", "hostname": "pi4-01", "ip-address": "192.0.2.101"`,
		`"data": "`+strings.ToUpper(hex.EncodeToString([]byte("shell")))+`", "always-send": true`,
		`"data": "`+strings.ToUpper(hex.EncodeToString([]byte("nfs://192.0.2.10/srv/nfs/rack?vers=3&overlay")))+`", "always-send": true`,
		strings.ToUpper(hex.EncodeToString([]byte("http://192.0.2.10:8080/img/52-54-00-12-34-56.squashfs"))),
		"serial 1234abcd) has no mac",
	)
	wantNone(t, out, "{{")
	frag := gen(t, "kea", false)
	wantAll(t, frag, "FRAGMENT", `"reservations-global": true`, `"hw-address": "b8:27:eb:11:22:33"`)
	wantNone(t, frag, `"subnet4"`, `"interfaces-config"`)
}

func TestISCContent(t *testing.T) {
	out := gen(t, "isc", true)
	wantAll(t, out,
		"option ramboot-224 code 224 = text;",
		"subnet 192.0.2.0 netmask 255.255.255.0 {\n  range 192.0.2.150 192.0.2.199;",
		`substring(pick-first-value(option pxe-client-id, "-"), 0, 5) = 00:52:50:69:34`,
		"substring(hardware, 1, 3) = dc:a6:32",
		"option vendor-encapsulated-options "+colonHex(mustHex(dnsmasqMenu))+";",
		"option vendor-encapsulated-options "+colonHex(dhcp.PiMenu(dhcp.Pi3Menu))+";",
		`option vendor-class-identifier "PXEClient";`,
		"concat(option dhcp-parameter-request-list, 2b, 3c, 42)",
		"concat(option dhcp-parameter-request-list, e0)",
		"concat(option dhcp-parameter-request-list, 2b, 3c, 42, e0)",
		"next-server 192.0.2.10;",
		`filename "undionly.kpxe";`,
		`filename "snponly.efi";`,
		`filename "http://192.0.2.10:8080/boot/${mac:hexhyp}.ipxe?arch=amd64";`,
		`pick-first-value(option user-class, "-") = "iPXE"`,
		"hardware ethernet dc:a6:32:01:36:c2;\n  fixed-address 192.0.2.101;\n  option host-name \"pi4-01\";",
		`option ramboot-224 "shell";`,
		`option ramboot-224 "nfs://192.0.2.10/srv/nfs/rack?vers=3&overlay";`,
		`option ramboot-224 "http://192.0.2.10:8080/img/52-54-00-12-34-56.squashfs \"quoted\"";`,
	)
	frag := gen(t, "isc", false)
	wantAll(t, frag, "FRAGMENT", "host ramboot-node2 {")
	wantNone(t, frag, "subnet ", "authoritative")
}

func TestDnsmasqContent(t *testing.T) {
	out := gen(t, "dnsmasq", true)
	wantAll(t, out,
		"interface=eth1\n",
		"dhcp-range=192.0.2.150,192.0.2.199,255.255.255.0,1h",
		"dhcp-match=set:rpi-id,97,00:52:50:69:34",
		"dhcp-mac=set:rpi-mac,dc:a6:32:*:*:*",
		"tag-if=set:rpi,tag:pxe,tag:rpi-mac,tag:!boot",
		"dhcp-option-force=tag:rpi,43,"+colonHex(mustHex(dnsmasqMenu)),
		"dhcp-option-force=tag:rpi3,43,"+colonHex(dhcp.PiMenu(dhcp.Pi3Menu)),
		`dhcp-option-force=tag:rpi,60,"PXEClient"`,
		"dhcp-boot=tag:pc,tag:bios,undionly.kpxe,,192.0.2.10",
		"dhcp-boot=tag:pc,tag:efi64,snponly.efi,,192.0.2.10",
		"dhcp-boot=tag:ipxe,tag:!ramboot-init,tag:x86,http://192.0.2.10:8080/boot/${mac:hexhyp}.ipxe?arch=amd64,,192.0.2.10",
		"dhcp-host=dc:a6:32:01:36:c2,set:node1,192.0.2.101,pi4-01",
		`dhcp-option-force=tag:node2,224,"shell"`,
		`dhcp-option-force=tag:ramboot-init,tag:!own224,224,"nfs://192.0.2.10/srv/nfs/rack?vers=3&overlay"`,
	)
	// Option 93 alone never makes a Pi.
	wantNone(t, out, "set:rpi,tag:bios", "set:rpi,tag:x86")
	frag := gen(t, "dnsmasq", false)
	wantAll(t, frag, "FRAGMENT")
	wantNone(t, frag, "dhcp-range=", "\ninterface=", "port=0")
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// checker runs a server's own syntax check on FILE. It never starts a
// server: -t / --test only parse.
type checker struct {
	pkg  string
	bin  string
	args func(file string) []string
}

var checkers = map[string]checker{
	"kea":     {"kea-dhcp4-server", "kea-dhcp4", func(f string) []string { return []string{"-t", f} }},
	"isc":     {"isc-dhcp-server", "dhcpd", func(f string) []string { return []string{"-t", "-cf", f} }},
	"dnsmasq": {"dnsmasq", "dnsmasq", func(f string) []string { return []string{"--test", "--conf-file=" + f} }},
}

func findBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { st, err := os.Stat(p); return err == nil && !st.IsDir() }

// TestServerCheck runs each server's own config check on the complete
// config and the fragment.
func TestServerCheck(t *testing.T) {
	for _, format := range Formats {
		for _, v := range []struct{ full, pxelinux bool }{{true, false}, {false, false}, {true, true}} {
			full := v.full
			name := format + "/fragment"
			if full {
				name = format + "/full"
			}
			if v.pxelinux {
				name += "/pxelinux"
			}
			t.Run(name, func(t *testing.T) {
				c := checkers[format]
				bin := findBin(c.bin)
				if bin == "" {
					msg := c.bin + " not found: apt-get install " + c.pkg + " (or run e2e/deps.sh)"
					if os.Getenv("RAMBOOT_STRICT") == "1" {
						t.Fatal(msg)
					}
					t.Skip(msg)
				}
				file := filepath.Join(t.TempDir(), "ramboot."+format+".conf")
				// Kea checks that the interface exists.
				out := genPXE(t, format, full, "lo", v.pxelinux)
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, bin, c.args(file)...)
				if format == "isc" {
					// dhcpd -t also wants a lease file path it can name.
					cmd.Args = append(cmd.Args, "-lf", filepath.Join(t.TempDir(), "leases"))
				}
				res, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s\nconfig:\n%s", strings.Join(cmd.Args, " "), err, res, numbered(out))
				}
			})
		}
	}
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%4d: %s\n", i+1, l)
	}
	return b.String()
}

// TestPXELinux: with PXELinux, BIOS PCs (firmware and iPXE ROMs) are sent
// to pxelinux.0 and nothing names undionly.kpxe; UEFI PCs keep iPXE.
func TestPXELinux(t *testing.T) {
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			out := genPXE(t, format, true, "eth1", true)
			wantAll(t, out, "pxelinux.0", "snponly.efi", "ramboot pxelinux")
			if strings.Contains(out, "undionly.kpxe") {
				t.Errorf("a pxelinux config still names undionly.kpxe:\n%s", numbered(out))
			}
			if plain := gen(t, format, true); strings.Contains(plain, "pxelinux") {
				t.Errorf("a config without PXELinux names pxelinux:\n%s", numbered(plain))
			}
		})
	}
}

// TestInstallNodes: a static config cannot follow the install lifecycle.
// A node with install: gets its boot: form, and the header says so and
// prints the install form, in every format; nothing in nodes.yaml is
// silently dropped.
func TestInstallNodes(t *testing.T) {
	const sha = "3f0c8a2b6f3c5d1e9a7b4c2d0e8f6a4b2c0d9e7f5a3b1c8d6e4f2a0b9c7d5e3f"
	inv, err := inventory.Parse([]byte(`nodes:
  - mac: 02:00:00:00:00:01
    hostname: pi-r1-01
    install:
      image: "http://{{.Server}}:8080/img/debian.raw.xz"
      sha256: ` + sha + `
  - mac: 02:00:00:00:00:02
    hostname: pi-r1-02
    install:
      image: "http://{{.Server}}:8080/img/debian.raw.xz"
      sha256: ` + sha + `
    boot: "nfs://{{.Server}}/srv/{{.Hostname}}"
`))
	if err != nil {
		t.Fatal(err)
	}
	ip, n, err := ParseServer("192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range Formats {
		var b bytes.Buffer
		if err := Generate(&b, Options{Format: format, Inventory: inv, Server: ip, Net: n, Interface: "eth1"}); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		out := b.String()
		wantAll(t, out,
			`node 02:00:00:00:00:01 (nodes.yaml line 2) has install:; this config gives it the boot: form "local"`,
			`node 02:00:00:00:00:02 (nodes.yaml line 7) has install:; this config gives it the boot: form "nfs://192.0.2.10/srv/pi-r1-02"`,
			"install:http://192.0.2.10:8080/img/debian.raw.xz#sha256="+sha,
			"only `ramboot serve` keeps that state")
	}
}
