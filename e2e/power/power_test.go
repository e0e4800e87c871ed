package power

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
)

// ramboot runs the ramboot binary in peer p's namespace (the operator's
// host on the lab network) and returns its output.
func ramboot(t *testing.T, p *lab.Peer, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", p.NS, cache.Ramboot(t)}, args...)...).CombinedOutput()
	return string(out), err
}

// TestPowerIPMI: a node whose BMC is OpenIPMI's ipmi_sim (IPMI v2.0
// lanplus on 192.0.2.1:623, admin's password in a file); the simulator's
// power-on runs a QEMU guest, its power-off kills it. `ramboot node power`
// from the operator's host: status off; on, and the guest netboots from
// ramboot serve to the shell option 224 gives it; cycle, and it boots
// again; off, and the guest is gone. A wrong password is refused, and the
// password appears in no output.
func TestPowerIPMI(t *testing.T) {
	lab.Skip(t)
	lab.Need(t, "ipmi_sim", "openipmi")
	src, _ := cache.Image(t, "virt")
	l := lab.New(t)
	router := l.Peer(t, "192.0.2.2")
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
	op := l.Peer(t, "192.0.2.3")
	dir := t.TempDir()
	// The guest the BMC powers: QEMU on tap0, its console to a file.
	console := filepath.Join(dir, "console.log")
	guest := l.GuestScript(t, dir, l.Guest(src, ""), console)
	pass, sim := l.IPMISim(t, guest)
	nodes := filepath.Join(dir, "nodes.yaml")
	lab.WriteFile(t, nodes, fmt.Sprintf("nodes:\n  - mac: %s\n    hostname: node-7\n    option224: shell\n    power: {driver: ipmi, address: %s, username: admin, password_file: %s, cycle_wait: 1}\n", lab.GuestMAC, lab.Addr, pass))
	l.Serve(t, src, "--dhcp", "proxy", "--nodes", nodes)

	files := []string{"--nodes", nodes, "--state-file", filepath.Join(dir, "state.json")}
	power := func(action string) string {
		t.Helper()
		out, err := ramboot(t, op, append([]string{"node", "power", action, "node-7"}, files...)...)
		t.Logf("node power %s: %s", action, strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("node power %s: %v\n%s\nipmi_sim:\n%s", action, err, out, qemu.TailLines(sim.Output(), 20))
		}
		if strings.Contains(out, "Bmc-s3cret") {
			t.Fatalf("the BMC password is in the output:\n%s", out)
		}
		return out
	}
	if out := power("status"); !strings.Contains(out, "node-7: power status via ipmi "+lab.Addr+":623: off") {
		t.Errorf("status before power on: %s", out)
	}
	t0 := time.Now()
	if out := power("on"); !strings.Contains(out, ": on (") {
		t.Errorf("power on: %s", out)
	}
	lab.WaitFile(t, console, `224: option 224 says shell`, 1, 180*time.Second)
	t.Logf("power on to the guest's shell: %v", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if out := power("cycle"); !strings.Contains(out, ": on (") {
		t.Errorf("power cycle: %s", out)
	}
	lab.WaitFile(t, console, `init: started \(pid 1\)`, 2, 120*time.Second)
	lab.WaitFile(t, console, `224: option 224 says shell`, 2, 120*time.Second)
	t.Logf("power cycle to the guest's second shell: %v", time.Since(t0).Round(time.Millisecond))
	if lab.GuestPid(dir) == 0 {
		t.Fatalf("the guest's QEMU is not running after power on")
	}
	if out := power("off"); !strings.Contains(out, ": off (") {
		t.Errorf("power off: %s", out)
	}
	lab.WaitGuestGone(t, dir, 10*time.Second)
	// A wrong password: refused by the BMC, said so, not printed.
	lab.WriteFile(t, pass, "wrong-Pa55\n")
	out, err := ramboot(t, op, append([]string{"node", "power", "status", "node-7"}, files...)...)
	if err == nil || !strings.Contains(out, "node-7: power status via ipmi") || !strings.Contains(out, "failed after") || strings.Contains(out, "wrong-Pa55") {
		t.Errorf("status with a wrong password: %v\n%s", err, out)
	}
}

// TestPowerPoE: a Pi powered from a PoE switch port, the switch being
// net-snmp's snmpd with a pass_persist agent for POWER-ETHERNET-MIB
// (write community in a file). `ramboot node power` sets and reads
// pethPsePortAdminEnable.1.3; snmpget, the reference client, reads the
// same; a cycle is off then on; a read-only community is refused with
// the switch's answer, and no community appears in any output.
func TestPowerPoE(t *testing.T) {
	lab.Skip(t)
	lab.Need(t, "snmpget", "snmp")
	l := lab.New(t)
	op := l.Peer(t, "192.0.2.3")
	sw := l.PoESwitch(t, nil)
	dir, sets, community := t.TempDir(), sw.Sets, sw.CommunityFile
	nodes := filepath.Join(dir, "nodes.yaml")
	lab.WriteFile(t, nodes, "defaults:\n  power: {driver: poe, address: "+lab.Addr+", community_file: "+community+", cycle_wait: 1}\nnodes:\n  - serial: 9ffefdef\n    hostname: pi-3\n    power: {port: \"1.3\"}\n")
	files := []string{"--nodes", nodes, "--state-file", filepath.Join(dir, "state.json")}
	power := func(action string) (string, error) {
		out, err := ramboot(t, op, append([]string{"node", "power", action, "pi-3"}, files...)...)
		t.Logf("node power %s: %s", action, strings.TrimSpace(out))
		if strings.Contains(out, "Poe-w1") || strings.Contains(out, "Poe-r0") {
			t.Fatalf("a community is in the output:\n%s", out)
		}
		return out, err
	}
	snmpget := func() string {
		// Its own persistent directory: snmpget writes there.
		out, err := exec.Command("ip", "netns", "exec", op.NS, "env", "SNMP_PERSISTENT_DIR="+filepath.Join(sw.Dir, "snmp"), "MIBS=",
			"snmpget", "-v2c", "-c", "Poe-r0", "-Oqv", lab.Addr, ".1.3.6.1.2.1.105.1.1.1.3.1.3").Output()
		if err != nil {
			t.Fatalf("snmpget: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1]
	}
	for _, step := range []struct{ action, state, ref, sets string }{
		{"status", "on", "1", ""},
		{"off", "off", "2", "1.3 2\n"},
		{"on", "on", "1", "1.3 2\n1.3 1\n"},
		{"cycle", "on", "1", "1.3 2\n1.3 1\n1.3 2\n1.3 1\n"},
	} {
		out, err := power(step.action)
		if err != nil || !strings.Contains(out, "pi-3: power "+step.action+" via poe "+lab.Addr+":161 port 1.3: "+step.state+" (") {
			t.Errorf("power %s: %v\n%s", step.action, err, out)
		}
		if got := snmpget(); got != step.ref {
			t.Errorf("after power %s snmpget reads %q, want %s", step.action, got, step.ref)
		}
		if got, _ := os.ReadFile(sets); string(got) != step.sets {
			t.Errorf("after power %s the switch was set:\n%s\nwant:\n%s", step.action, got, step.sets)
		}
	}
	// A read-only community: the switch refuses the set.
	lab.WriteFile(t, community, "Poe-r0\n")
	if out, err := power("off"); err == nil || !strings.Contains(out, "failed after") || !strings.Contains(out, "the switch says") {
		t.Errorf("power off with a read-only community: %v\n%s", err, out)
	}
	if got := snmpget(); got != "1" {
		t.Errorf("a refused set changed the port: %s", got)
	}
}
