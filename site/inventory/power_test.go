package inventory

import (
	"net"
	"strings"
	"testing"
)

// TestPower: a node's power: over the defaults', field by field; the
// entry is checked when nodes.yaml loads, naming what is missing.
func TestPower(t *testing.T) {
	inv, err := Parse([]byte(`defaults:
  power: {driver: poe, address: 192.0.2.60, community_file: /etc/ramboot/poe.community, cycle_wait: 2}
nodes:
  - mac: dc:a6:32:01:36:c2
    power: {port: "1.3"}
  - mac: 52:54:00:12:34:61
    power: {driver: ipmi, address: "192.0.2.50:6230", username: admin, password_file: /etc/ramboot/bmc.pass}
  - mac: 52:54:00:12:34:62
`))
	if err != nil {
		t.Fatal(err)
	}
	pi, _ := net.ParseMAC("dc:a6:32:01:36:c2")
	if p := inv.PowerOf(pi, ""); p == nil || p.Driver != "poe" || p.Address != "192.0.2.60" || p.Port != "1.3" || p.CycleWait != 2 {
		t.Errorf("the Pi's power: %+v", p)
	}
	pc, _ := net.ParseMAC("52:54:00:12:34:61")
	if p := inv.PowerOf(pc, ""); p == nil || p.Driver != "ipmi" || p.Address != "192.0.2.50:6230" || p.PasswordFile != "/etc/ramboot/bmc.pass" {
		t.Errorf("the PC's power: %+v", p)
	}
	other, _ := net.ParseMAC("52:54:00:99:99:99")
	if p := inv.PowerOf(other, ""); p != nil {
		t.Errorf("a node not listed has power %+v", p)
	}
	for data, want := range map[string]string{
		"nodes:\n  - mac: 52:54:00:12:34:61\n    power: {driver: ipmi, address: 192.0.2.50, username: a}\n":                              "password_file",
		"nodes:\n  - mac: 52:54:00:12:34:61\n    power: {driver: ipmi, address: 192.0.2.50, username: a, password_file: bmc.pass}\n":     "absolute path",
		"nodes:\n  - mac: 52:54:00:12:34:61\n    power: {driver: poe, address: 192.0.2.60, community_file: /c, port: x.3}\n":             "GROUP.PORT",
		"nodes:\n  - mac: 52:54:00:12:34:61\n    power: {driver: redfish}\n":                                                             "want ipmi, poe or command",
		"nodes:\n  - mac: 52:54:00:12:34:61\n    power: {driver: command, command: /bin/true, cycle_wait: 900}\n":                        "cycle_wait",
		"nodes:\n  - mac: 52:54:00:12:34:61\n    power: {driver: poe, address: \"192.0.2.60:99999\", community_file: /c, port: \"3\"}\n": "bad port",
	} {
		if _, err := Parse([]byte(data)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", data, err, want)
		}
	}
}
