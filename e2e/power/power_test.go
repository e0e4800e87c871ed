package power

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// waitFile waits until file matches re, and returns the count of matches.
func waitFile(t *testing.T, file, re string, n int, timeout time.Duration) {
	t.Helper()
	rx := regexp.MustCompile(re)
	var data []byte
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		data, _ = os.ReadFile(file)
		if len(rx.FindAllIndex(data, -1)) >= n {
			return
		}
	}
	t.Fatalf("%s: %d× %q not seen within %v; its end:\n%s", file, n, re, timeout, qemu.TailLines(string(data), 30))
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
	pass := filepath.Join(dir, "bmc.pass")
	lab.WriteFile(t, pass, "Bmc-s3cret\n")
	nodes := filepath.Join(dir, "nodes.yaml")
	lab.WriteFile(t, nodes, fmt.Sprintf("nodes:\n  - mac: %s\n    hostname: node-7\n    option224: shell\n    power: {driver: ipmi, address: %s, username: admin, password_file: %s, cycle_wait: 1}\n", lab.GuestMAC, lab.Addr, pass))
	l.Serve(t, src, "--dhcp", "proxy", "--nodes", nodes)

	// The guest the BMC powers: QEMU on tap0, its console to a file.
	console := filepath.Join(dir, "console.log")
	bin, args := l.Guest(src, "").Command(t)
	if bin == "ip" { // the simulator runs in the lab's namespace already
		bin, args = args[3], args[4:]
	}
	var quoted []string
	for _, a := range append([]string{bin}, args...) {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	guest := filepath.Join(dir, "guest.sh")
	lab.WriteFile(t, guest, "#!/bin/sh\nexec "+strings.Join(quoted, " ")+" </dev/null >>"+console+" 2>&1\n")
	os.Chmod(guest, 0o755)
	conf := filepath.Join(dir, "lan.conf")
	lab.WriteFile(t, conf, `name "ramboot-e2e"
set_working_mc 0x20
  startlan 1
    addr `+lab.Addr+` 623
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  serial 15 127.0.0.1 9002 codec VM
  startcmd "`+guest+`"
  startnow false
  poweroff_wait 1
  kill_wait 5
  user 2 true "admin" "Bmc-s3cret" admin 10 none md2 md5 straight
`)
	emu := filepath.Join(dir, "sim.emu")
	lab.WriteFile(t, emu, "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n")
	state := filepath.Join(dir, "ipmi-state")
	os.MkdirAll(state, 0o755)
	sim := lab.StartIn(t, l.NS, "ipmi_sim", "ipmi_sim", "-c", conf, "-f", emu, "-s", state, "-n")
	time.Sleep(time.Second)

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
	waitFile(t, console, `224: option 224 says shell`, 1, 180*time.Second)
	t.Logf("power on to the guest's shell: %v", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if out := power("cycle"); !strings.Contains(out, ": on (") {
		t.Errorf("power cycle: %s", out)
	}
	waitFile(t, console, `init: started \(pid 1\)`, 2, 120*time.Second)
	waitFile(t, console, `224: option 224 says shell`, 2, 120*time.Second)
	t.Logf("power cycle to the guest's second shell: %v", time.Since(t0).Round(time.Millisecond))
	if out := power("off"); !strings.Contains(out, ": off (") {
		t.Errorf("power off: %s", out)
	}
	time.Sleep(time.Second)
	if out, _ := exec.Command("pgrep", "-f", console).CombinedOutput(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("the guest still runs after power off: pids %s", out)
	}
	// A wrong password: refused by the BMC, said so, not printed.
	lab.WriteFile(t, pass, "wrong-Pa55\n")
	out, err := ramboot(t, op, append([]string{"node", "power", "status", "node-7"}, files...)...)
	if err == nil || !strings.Contains(out, "node-7: power status via ipmi") || !strings.Contains(out, "failed after") || strings.Contains(out, "wrong-Pa55") {
		t.Errorf("status with a wrong password: %v\n%s", err, out)
	}
}

// poeAgent is a pass_persist agent for snmpd that plays a PoE switch:
// POWER-ETHERNET-MIB's pethPsePortAdminEnable for group 1, ports 1 to 8,
// each true(1) or false(2), every accepted set appended to a log.
const poeAgent = `#!/usr/bin/python3
import sys
BASE = ".1.3.6.1.2.1.105.1.1.1.3"
ports = {"%s.1.%d" % (BASE, p): 1 for p in range(1, 9)}
order = sorted(ports, key=lambda o: [int(x) for x in o.strip(".").split(".")])
log = open(sys.argv[1], "a")
def out(*lines):
    sys.stdout.write("\n".join(str(l) for l in lines) + "\n")
    sys.stdout.flush()
while True:
    cmd = sys.stdin.readline()
    if not cmd:
        break
    cmd = cmd.strip()
    if cmd == "PING":
        out("PONG")
    elif cmd == "get":
        oid = sys.stdin.readline().strip()
        out(oid, "integer", ports[oid]) if oid in ports else out("NONE")
    elif cmd == "getnext":
        oid = sys.stdin.readline().strip()
        key = [int(x) for x in oid.strip(".").split(".")]
        nxt = [o for o in order if [int(x) for x in o.strip(".").split(".")] > key]
        out(nxt[0], "integer", ports[nxt[0]]) if nxt else out("NONE")
    elif cmd == "set":
        oid = sys.stdin.readline().strip()
        typ, _, val = sys.stdin.readline().strip().partition(" ")
        if oid not in ports:
            out("not-writable")
        elif typ != "integer" or val not in ("1", "2"):
            out("wrong-value")
        else:
            ports[oid] = int(val)
            log.write("%s %s\n" % (oid[len(BASE) + 1:], val))
            log.flush()
            out("DONE")
`

// TestPowerPoE: a Pi powered from a PoE switch port, the switch being
// net-snmp's snmpd with a pass_persist agent for POWER-ETHERNET-MIB
// (write community in a file). `ramboot node power` sets and reads
// pethPsePortAdminEnable.1.3; snmpget, the reference client, reads the
// same; a cycle is off then on; a read-only community is refused with
// the switch's answer, and no community appears in any output.
func TestPowerPoE(t *testing.T) {
	lab.Skip(t)
	lab.Need(t, "snmpd", "snmpd")
	lab.Need(t, "snmpget", "snmp")
	lab.Need(t, "python3", "python3")
	l := lab.New(t)
	op := l.Peer(t, "192.0.2.3")
	dir := t.TempDir()
	agent, sets := filepath.Join(dir, "poe.py"), filepath.Join(dir, "sets.log")
	lab.WriteFile(t, agent, poeAgent)
	os.Chmod(agent, 0o755)
	conf := filepath.Join(dir, "snmpd.conf")
	lab.WriteFile(t, conf, "agentAddress udp:"+lab.Addr+":161\nrwcommunity Poe-w1 192.0.2.0/24\nrocommunity Poe-r0 192.0.2.0/24\npass_persist .1.3.6.1.2.1.105.1.1.1.3 "+agent+" "+sets+"\n")
	community := filepath.Join(dir, "poe.community")
	lab.WriteFile(t, community, "Poe-w1\n")
	os.MkdirAll(filepath.Join(dir, "snmp"), 0o755)
	proc := lab.StartIn(t, l.NS, "snmpd", "env", "SNMP_PERSISTENT_DIR="+filepath.Join(dir, "snmp"), "MIBS=",
		lab.Sbin(t, "snmpd", "snmpd"), "-f", "-Lo", "-C", "-c", conf, "-p", filepath.Join(dir, "snmpd.pid"))
	proc.Expect(`NET-SNMP version`, 15*time.Second)

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
		out, err := exec.Command("ip", "netns", "exec", op.NS, "env", "SNMP_PERSISTENT_DIR="+filepath.Join(dir, "snmp"), "MIBS=",
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
