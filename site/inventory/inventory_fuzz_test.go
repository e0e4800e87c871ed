package inventory

import (
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"
)

// FuzzInventory: a nodes.yaml that parses finds each of its nodes, by MAC
// and by serial, with that node's own line, hostname (or the default one),
// address and a known TFTP prefix; and written back out as YAML it parses
// to the same inventory.
func FuzzInventory(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("nodes:\n  - mac: DC-A6-32-01-36-C2\n    hostname: a.b\n    tftp_prefix: none\n  - serial: 0x9FFEFDEF\n    address: 192.0.2.7\n"))
	f.Add([]byte("defaults:\n  hostname: rack\n  tftp_prefix: mac\nnodes: []\n"))
	f.Add([]byte("defaults:\n  option224: '{{.MACHyphen}}-{{.Serial}}-{{.Hostname}}'\nnodes:\n  - serial: 12345678\n"))
	f.Add([]byte("nodes:\n  - &a {mac: 'dc:a6:32:01:36:c2'}\n  - *a\n"))
	f.Add([]byte(lifecycleYAML))
	f.Add([]byte("defaults:\n  install: {image: 'tftp://{{.Server}}/{{.Serial}}.img', sha256: none, then: local}\n  boot: 'local:{{.Hostname}}'\nnodes:\n  - {mac: 02:00:00:00:00:01, hostname: a}\n"))
	f.Add([]byte("nodes:\n  - mac: 02:00:00:00:00:01\n    install:\n      image: http://h/i\n      sha256: none\n      keys: http://h/k#sha256=" + strings.Repeat("A", 64) +
		"\n      seed: 'http://h/s#sha256=" + strings.Repeat("0", 64) + "," + strings.Repeat("f", 64) + "'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		inv, err := Parse(data)
		if err != nil {
			return
		}
		srv := net.IPv4(192, 0, 2, 1)
		check := func(how string, n *Node, m Match, ok bool) {
			t.Helper()
			if !ok || m.Line != n.line {
				t.Fatalf("node of line %d by %s: %+v, %v", n.line, how, m, ok)
			}
			want := n.Hostname
			if want == "" {
				want = inv.Defaults.Hostname
			}
			if m.Hostname != want || !m.Address.Equal(n.ip) {
				t.Fatalf("node of line %d by %s: %+v, want hostname %q address %v", n.line, how, m, want, n.ip)
			}
			if m.Install != "" && (!strings.HasPrefix(m.Install, "install:") || !strings.Contains(m.Install, "#sha256=") || len(m.Install) > MaxInstallForm || m.Option224 == "") {
				t.Fatalf("node of line %d: install form %q, then %q", n.line, m.Install, m.Option224)
			}
			switch m.TFTPPrefix {
			case "serial", "mac", "none":
			default:
				t.Fatalf("node of line %d: tftp prefix %q", n.line, m.TFTPPrefix)
			}
		}
		for i := range inv.Nodes {
			n := &inv.Nodes[i]
			if n.mac != nil {
				m, ok, _ := inv.Lookup(n.mac, "", srv)
				check("mac", n, m, ok)
			}
			if n.Serial != "" {
				m, ok, _ := inv.Lookup(nil, strings.ToUpper(n.Serial), srv)
				check("serial", n, m, ok)
			}
		}
		out, err := yaml.Marshal(inv)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("parsed, written back as\n%s\nthen: %v", out, err)
		}
		opts := cmp.Options{cmpopts.IgnoreUnexported(Inventory{}, Node{}, Install{}), cmpopts.EquateEmpty()}
		if d := cmp.Diff(inv, again, opts); d != "" {
			t.Fatalf("round trip through\n%s\n(-first +second):\n%s", out, d)
		}
	})
}
