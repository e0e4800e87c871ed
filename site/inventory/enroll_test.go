package inventory

import (
	"net"
	"strings"
	"testing"
)

const enrollBase = `# The rack's inventory. Keep it sorted by rack position.
defaults:
  option224: shell   # unknown nodes: the provisioning shell
  tftp_prefix: serial

nodes:
  # rack 1
  - mac: dc:a6:32:01:36:c2
    hostname: pi-r1-01   # top
    address: 192.0.2.101
  - serial: 9ffefdef
    hostname: pi-r1-02
    option224: "nfs://{{.Server}}/srv/nfs/rack?vers=3"
`

// TestEnroll: an enrolled node is appended to nodes: with what was
// given, and everything else stays: comments, order, the defaults, the
// other entries' values; the result is an inventory serve loads.
func TestEnroll(t *testing.T) {
	out, err := Enroll([]byte(enrollBase), Entry{MAC: "DC-A6-32-01-36-C9", Serial: "1234ABCD", Hostname: "pi-r1-03",
		Address: "192.0.2.103", Option224: "chain http://{{.Server}}:8080/boot/{{.MAC}}.ipxe"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"# The rack's inventory. Keep it sorted by rack position.", "# unknown nodes: the provisioning shell",
		"# rack 1", "# top", "tftp_prefix: serial"} {
		if !strings.Contains(s, want) {
			t.Errorf("lost %q:\n%s", want, s)
		}
	}
	if i, j, k := strings.Index(s, "pi-r1-01"), strings.Index(s, "pi-r1-02"), strings.Index(s, "pi-r1-03"); !(i < j && j < k) || i < 0 {
		t.Errorf("order: pi-r1-01 at %d, -02 at %d, the new -03 at %d:\n%s", i, j, k, s)
	}
	inv, err := Parse(out)
	if err != nil {
		t.Fatalf("the result does not parse: %v\n%s", err, s)
	}
	mac, _ := net.ParseMAC("dc:a6:32:01:36:c9")
	m, ok, err := inv.Lookup(mac, "", net.ParseIP("192.0.2.1"))
	if err != nil || !ok || m.Hostname != "pi-r1-03" || !m.Address.Equal(net.ParseIP("192.0.2.103")) ||
		m.Option224 != "chain http://192.0.2.1:8080/boot/dc:a6:32:01:36:c9.ipxe" {
		t.Errorf("the enrolled node looks up as %+v, %v, %v", m, ok, err)
	}
	if m, _, _ := inv.Lookup(nil, "1234abcd", net.ParseIP("192.0.2.1")); m.Hostname != "pi-r1-03" {
		t.Errorf("by its serial: %+v", m)
	}
	old, _ := Parse([]byte(enrollBase))
	if len(inv.Nodes) != len(old.Nodes)+1 || inv.Nodes[1].Option224 != old.Nodes[1].Option224 || inv.Defaults.Option224 != "shell" {
		t.Errorf("the other entries changed: %+v", inv.Nodes)
	}
}

// TestEnrollInstall: an install: entry as nodes.yaml writes it.
func TestEnrollInstall(t *testing.T) {
	sha := strings.Repeat("3f", 32)
	out, err := Enroll([]byte(enrollBase), Entry{MAC: "dc:a6:32:01:36:ca", Hostname: "pi-r1-04",
		Install: "http://{{.Server}}:8080/img/debian.raw.xz", InstallSHA256: sha, Boot: "local"})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Parse(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mac, _ := net.ParseMAC("dc:a6:32:01:36:ca")
	m, _, err := inv.Lookup(mac, "", net.ParseIP("192.0.2.1"))
	if err != nil || m.InstallImage != "http://192.0.2.1:8080/img/debian.raw.xz" || m.InstallSHA256 != sha {
		t.Errorf("the enrolled install: %+v, %v\n%s", m, err, out)
	}
}

// TestEnrollRefused: a node already listed, a clash, a bad MAC, a file
// that is not an inventory: each an error naming it, nothing returned.
func TestEnrollRefused(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		e          Entry
		want       string
	}{
		{"same MAC", enrollBase, Entry{MAC: "dc:a6:32:01:36:c2", Hostname: "x"}, "dc:a6:32:01:36:c2"},
		{"same serial", enrollBase, Entry{Serial: "9FFEFDEF", Hostname: "x"}, "9ffefdef"},
		{"same hostname", enrollBase, Entry{MAC: "dc:a6:32:01:36:cb", Hostname: "pi-r1-02"}, "pi-r1-02"},
		{"same address", enrollBase, Entry{MAC: "dc:a6:32:01:36:cb", Address: "192.0.2.101"}, "192.0.2.101"},
		{"bad MAC", enrollBase, Entry{MAC: "dc:a6:32"}, "not an Ethernet MAC"},
		{"no name", enrollBase, Entry{Hostname: "x"}, "MAC or its Pi serial"},
		{"nodes not a list", "nodes: 3\n", Entry{MAC: "dc:a6:32:01:36:cb"}, "not a list"},
		{"not yaml", "nodes: [\n", Entry{MAC: "dc:a6:32:01:36:cb"}, "nodes.yaml"},
	} {
		out, err := Enroll([]byte(tc.data), tc.e)
		if err == nil || out != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v (%d bytes); want an error naming %q", tc.name, err, len(out), tc.want)
		}
	}
}

// TestEnrollEmpty: into an empty file, and into "nodes:" with nothing.
func TestEnrollEmpty(t *testing.T) {
	for _, data := range []string{"", "nodes:\n", "# nothing yet\n"} {
		out, err := Enroll([]byte(data), Entry{MAC: "dc:a6:32:01:36:cb", Hostname: "n1"})
		if err != nil {
			t.Errorf("%q: %v", data, err)
			continue
		}
		inv, err := Parse(out)
		if err != nil || len(inv.Nodes) != 1 || inv.Nodes[0].Hostname != "n1" {
			t.Errorf("%q: %v, %+v\n%s", data, err, inv, out)
		}
	}
}

// TestDiscoverPolicy: defaults: discover: says what an unlisted node gets
// (none: no answer; shell: the shell whatever the defaults' option 224);
// listed nodes are untouched; the setting is checked.
func TestDiscoverPolicy(t *testing.T) {
	base := "defaults:\n  option224: \"nfs://{{.Server}}/srv\"\n  discover: %s\nnodes:\n  - mac: dc:a6:32:01:36:c2\n    hostname: pi-1\n"
	listed, _ := net.ParseMAC("dc:a6:32:01:36:c2")
	other, _ := net.ParseMAC("dc:a6:32:01:36:c9")
	server := net.ParseIP("192.0.2.1")
	for _, tc := range []struct {
		policy    string
		ignore    bool
		option224 string
		listed224 string
	}{
		{`""`, false, "nfs://192.0.2.1/srv", "nfs://192.0.2.1/srv"},
		{"shell", false, "shell", "nfs://192.0.2.1/srv"},
		{"none", true, "", "nfs://192.0.2.1/srv"},
	} {
		inv, err := Parse([]byte(strings.Replace(base, "%s", tc.policy, 1)))
		if err != nil {
			t.Fatalf("discover: %s: %v", tc.policy, err)
		}
		m, ok, err := inv.Lookup(other, "", server)
		if !ok || err != nil || m.Ignore != tc.ignore || m.Option224 != tc.option224 {
			t.Errorf("discover: %s: an unlisted node gets %+v, %v, %v; want ignore %v, option 224 %q", tc.policy, m, ok, err, tc.ignore, tc.option224)
		}
		if m, _, _ := inv.Lookup(listed, "", server); m.Ignore || m.Option224 != tc.listed224 || m.Hostname != "pi-1" {
			t.Errorf("discover: %s: the listed node gets %+v", tc.policy, m)
		}
	}
	for data, want := range map[string]string{
		"defaults:\n  discover: maybe\n":                           `discover: "maybe": want shell`,
		"nodes:\n  - mac: dc:a6:32:01:36:c2\n    discover: none\n": "discover: is a defaults: setting",
	} {
		if _, err := Parse([]byte(data)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", data, err, want)
		}
	}
}
