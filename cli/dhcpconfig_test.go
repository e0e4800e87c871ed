package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const dhcpTestNodes = `defaults:
  option224: "nfs://{{.Server}}/srv/nfs/rack?vers=3"
nodes:
  - mac: dc:a6:32:01:36:c2
    hostname: pi4-01
    option224: shell
`

func TestDHCPConfigCommand(t *testing.T) {
	nodes := filepath.Join(t.TempDir(), "nodes.yaml")
	if err := os.WriteFile(nodes, []byte(dhcpTestNodes), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"kea", []string{`"Dhcp4"`, `"pool": "192.0.2.100 - 192.0.2.199"`, `"hw-address": "dc:a6:32:01:36:c2"`}},
		{"isc", []string{"option ramboot-224 code 224 = text;", "range 192.0.2.100 192.0.2.199;", `option ramboot-224 "shell";`}},
		{"dnsmasq", []string{"dhcp-range=192.0.2.100,192.0.2.199,", `dhcp-option-force=tag:node1,224,"shell"`, `224,"nfs://192.0.2.10/srv/nfs/rack?vers=3"`}},
	} {
		code, out, errOut := runCLI(t, "dhcp-config", "--format", tc.format, "--nodes", nodes, "--server", "192.0.2.10", "--interface", "eth1", "--range", "192.0.2.100-192.0.2.199")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.format, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.format, w, out)
			}
		}
	}
	// Without --range: a fragment that says so.
	code, out, errOut := runCLI(t, "dhcp-config", "--format", "isc", "--nodes", nodes, "--server", "192.0.2.10", "--interface", "eth1")
	if code != 0 || !strings.Contains(out, "FRAGMENT") || strings.Contains(out, "subnet ") {
		t.Errorf("fragment: exit %d, stderr %q, output:\n%s", code, errOut, out)
	}
}

func TestDHCPConfigErrors(t *testing.T) {
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(nodes, []byte(dhcpTestNodes), 0o644); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("nodes:\n  - mac: dc:a6:32:01:36\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	perNode := filepath.Join(dir, "pernode.yaml")
	if err := os.WriteFile(perNode, []byte("defaults:\n  option224: \"http://{{.Server}}/{{.MAC}}\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"dhcp-config", "--server", "192.0.2.10", "--interface", "eth1"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no format", base, 2, []string{"no --format", "--format kea"}},
		{"unknown format", append(base, "--format", "bind"), 2, []string{`unknown --format "bind"`, "kea, isc, dnsmasq"}},
		{"no server", []string{"dhcp-config", "--format", "kea", "--interface", "eth1"}, 2, []string{"--server is required", "192.0.2.10"}},
		{"bad server", []string{"dhcp-config", "--format", "kea", "--interface", "eth1", "--server", "pi.local"}, 2, []string{`--server "pi.local"`, "IPv4"}},
		{"no interface", []string{"dhcp-config", "--format", "kea", "--server", "192.0.2.10"}, 2, []string{"no --interface", "--interface eth1"}},
		{"range not a range", append(base, "--format", "kea", "--range", "192.0.2.100"), 2, []string{`--range "192.0.2.100"`, "FROM-TO"}},
		{"range reversed", append(base, "--format", "kea", "--range", "192.0.2.199-192.0.2.100"), 2, []string{"FROM is after TO", "192.0.2.100-192.0.2.199"}},
		{"range outside", append(base, "--format", "kea", "--range", "10.0.0.1-10.0.0.9"), 2, []string{"not inside 192.0.2.0/24", "--server ADDR/PREFIX"}},
		{"range holds server", append(base, "--format", "kea", "--range", "192.0.2.1-192.0.2.50"), 2, []string{"server's own address 192.0.2.10"}},
		{"nodes missing", append(base, "--format", "kea", "--nodes", filepath.Join(dir, "none.yaml")), 1, []string{"--nodes", "none.yaml", "no such file"}},
		{"nodes broken", append(base, "--format", "isc", "--nodes", broken), 1, []string{"broken.yaml", "line 2", "six hex bytes", "fix nodes.yaml"}},
		{"per-node defaults", append(base, "--format", "dnsmasq", "--nodes", perNode), 1, []string{"defaults: option224", "{{.Server}}", "give each node its own option224"}},
	} {
		code, out, errOut := runCLI(t, tc.args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tc.name, code, tc.code, errOut)
		}
		if out != "" {
			t.Errorf("%s: wrote a config on error:\n%s", tc.name, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: stderr %q lacks %q", tc.name, errOut, w)
			}
		}
	}
}
