package inventory

import (
	"net"
	"strings"
	"testing"
)

const sample = `# a rack
defaults:
  option224: "nfs://{{.Server}}/srv/rack?vers=3&overlay"
nodes:
  - mac: dc:a6:32:01:36:c2
    hostname: pi-r1-01
    address: 192.0.2.101
  - serial: 9FFEFDEF
    hostname: pi-r1-02
    option224: "http://{{.Server}}:8080/boot/{{.MACHyphen}}.ipxe"
    tftp_prefix: mac
`

func TestLookup(t *testing.T) {
	inv, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	srv := net.IPv4(192, 0, 2, 1)
	mac1, _ := net.ParseMAC("dc:a6:32:01:36:c2")
	m, ok, err := inv.Lookup(mac1, "", srv)
	if err != nil || !ok || m.Hostname != "pi-r1-01" || !m.Address.Equal(net.IPv4(192, 0, 2, 101)) ||
		m.Option224 != "nfs://192.0.2.1/srv/rack?vers=3&overlay" || m.TFTPPrefix != "serial" || m.Line != 5 {
		t.Fatalf("by mac: %+v %v %v", m, ok, err)
	}
	mac2, _ := net.ParseMAC("dc:a6:32:aa:bb:cc")
	m, ok, _ = inv.Lookup(mac2, "9ffefdef", srv)
	if !ok || m.Hostname != "pi-r1-02" || m.Option224 != "http://192.0.2.1:8080/boot/dc-a6-32-aa-bb-cc.ipxe" || m.TFTPPrefix != "mac" {
		t.Fatalf("by serial: %+v", m)
	}
	mac3, _ := net.ParseMAC("dc:a6:32:00:00:01")
	m, ok, _ = inv.Lookup(mac3, "", srv)
	if !ok || m.Hostname != "" || m.Option224 != "nfs://192.0.2.1/srv/rack?vers=3&overlay" {
		t.Fatalf("default: %+v", m)
	}
	empty, _ := Parse([]byte("nodes: []\n"))
	if _, ok, _ := empty.Lookup(mac3, "", srv); ok {
		t.Fatal("empty inventory matched")
	}
}

// http_boot is the node's own, else the defaults'; a node with none
// where the defaults have none gets "" (its board's boot.img).
func TestHTTPBoot(t *testing.T) {
	inv, err := Parse([]byte("defaults:\n  http_boot: rack-b\nnodes:\n  - mac: dc:a6:32:01:36:c2\n    http_boot: canary/rpi4\n  - serial: 9ffefdef\n"))
	if err != nil {
		t.Fatal(err)
	}
	mac1, _ := net.ParseMAC("dc:a6:32:01:36:c2")
	mac2, _ := net.ParseMAC("dc:a6:32:aa:bb:cc")
	for _, tc := range []struct {
		mac    net.HardwareAddr
		serial string
		want   string
	}{
		{mac1, "", "canary/rpi4"},
		{mac2, "9ffefdef", "rack-b"},
		{mac2, "", "rack-b"},
	} {
		if m, ok, err := inv.Lookup(tc.mac, tc.serial, nil); err != nil || !ok || m.HTTPBoot != tc.want {
			t.Errorf("Lookup(%s, %q): http_boot %q (ok %v, err %v), want %q", tc.mac, tc.serial, m.HTTPBoot, ok, err, tc.want)
		}
	}
	inv, err = Parse([]byte("nodes:\n  - mac: dc:a6:32:01:36:c2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m, _, _ := inv.Lookup(mac1, "", nil); m.HTTPBoot != "" {
		t.Errorf("no http_boot anywhere: got %q", m.HTTPBoot)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"nodes:\n  - mac: zz:zz\n", "line 2: mac \"zz:zz\""},
		{"nodes:\n  - hostname: a\n", "line 2: a node needs a mac or a serial"},
		{"nodes:\n  - serial: 123\n", "line 2: serial \"123\""},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n  - mac: dc-a6-32-01-36-c2\n", "line 3: mac dc:a6:32:01:36:c2 is already on line 2"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    address: 300.1.1.1\n", "address \"300.1.1.1\""},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    option224: \"{{.Nope}}\"\n", "option224"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    hostnme: x\n", "hostnme"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    tftp_prefix: ip\n", "tftp_prefix"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    http_boot: /srv/canary\n", "http_boot \"/srv/canary\""},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    http_boot: ../canary\n", "http_boot"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    http_boot: canary/../x\n", "http_boot"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    http_boot: canary//rpi4\n", "http_boot"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    http_boot: canary/\n", "http_boot"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    http_boot: .\n", "http_boot"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    http_boot: \"can ary\"\n", "http_boot"},
		{"defaults:\n  http_boot: ./x\n", "http_boot"},
		{"defaults:\n  mac: dc:a6:32:01:36:c2\n", "belong to a node"},
		{"nodes: [\n", "line"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(data)
		if err == nil {
			inv.Lookup(net.HardwareAddr{0xdc, 0xa6, 0x32, 1, 2, 3}, "9ffefdef", net.IPv4(192, 0, 2, 1))
		}
	})
}
