package lab

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/qemu"
)

// Power labs: a guest started by a power switch rather than by the test
// (a BMC simulator's power-on, a PoE port's enable), its console in a file.

// GuestScript writes dir/guest.sh, which runs the guest o in the lab's
// namespace (the switch that runs it is there already), its console
// appended to console, its process id in dir/guest.pid; a guest still
// running when the test ends is killed by that id.
func (l *Lab) GuestScript(t testing.TB, dir string, o qemu.Options, console string) string {
	t.Helper()
	bin, args := o.Command(t)
	if bin == "ip" { // ip netns exec NS qemu ...: the switch runs in NS
		bin, args = args[3], args[4:]
	}
	var quoted []string
	for _, a := range append([]string{bin}, args...) {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	pid := filepath.Join(dir, "guest.pid")
	script := filepath.Join(dir, "guest.sh")
	WriteFile(t, script, "#!/bin/sh\necho $$ >"+pid+"\nexec "+strings.Join(quoted, " ")+" </dev/null >>"+console+" 2>&1\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p := GuestPid(dir); p > 0 {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
	return script
}

// GuestPid is the process id of the QEMU that dir/guest.sh (GuestScript)
// started, if it still runs; else 0.
func GuestPid(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "guest.pid"))
	if err != nil {
		return 0
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || p <= 1 {
		return 0
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
	if err != nil || !strings.Contains(string(comm), "qemu-system") {
		return 0
	}
	return p
}

// WaitGuestGone waits until GuestScript's guest in dir has exited.
func WaitGuestGone(t testing.TB, dir string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); GuestPid(dir) != 0; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the guest (pid %d) still runs after %v", GuestPid(dir), timeout)
		}
	}
}

// WaitFile waits until file has at least n matches of re (a console
// that several boots append to).
func WaitFile(t testing.TB, file, re string, n int, timeout time.Duration) {
	t.Helper()
	rx := regexp.MustCompile(re)
	var data []byte
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		data, _ = os.ReadFile(file)
		if len(rx.FindAllIndex(data, -1)) >= n {
			return
		}
	}
	t.Fatalf("%s: %d of %q within %v; its end:\n%s", filepath.Base(file), n, re, timeout, qemu.TailLines(string(data), 30))
}

// poeAgent is a pass_persist agent for snmpd that plays a PoE switch:
// POWER-ETHERNET-MIB's pethPsePortAdminEnable for group 1, ports 1 to 8,
// each true(1) or false(2), every accepted set appended to a log. A port
// given a guest script (argv: LOG [PORT=SCRIPT ...]) starts off; enabling
// it runs the script, disabling it kills what the script runs, as a
// switch cuts a Pi's power. When snmpd goes, its guests go too.
const poeAgent = `#!/usr/bin/python3
import os, signal, subprocess, sys
BASE = ".1.3.6.1.2.1.105.1.1.1.3"
guests = dict(a.split("=", 1) for a in sys.argv[2:])
ports = {"%s.1.%d" % (BASE, p): (2 if "1.%d" % p in guests else 1) for p in range(1, 9)}
running = {}
order = sorted(ports, key=lambda o: [int(x) for x in o.strip(".").split(".")])
log = open(sys.argv[1], "a")
def out(*lines):
    sys.stdout.write("\n".join(str(l) for l in lines) + "\n")
    sys.stdout.flush()
def stop(port):
    p = running.pop(port, None)
    if p:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
def power(port, on):
    if port not in guests:
        return
    stop(port)
    if on:
        running[port] = subprocess.Popen([guests[port]], start_new_session=True, stdin=subprocess.DEVNULL)
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
            power(oid[len(BASE) + 1:], val == "1")
            log.write("%s %s\n" % (oid[len(BASE) + 1:], val))
            log.flush()
            out("DONE")
for port in list(running):
    stop(port)
`

// PoESwitch is net-snmp's snmpd on Addr:161 in the lab's namespace,
// playing a PoE switch (see poeAgent): write community Poe-w1 (in
// CommunityFile), read-only Poe-r0.
type PoESwitch struct {
	Proc          *Proc
	CommunityFile string // holds the write community
	Sets          string // the log of accepted sets, "GROUP.PORT VALUE" a line
	Dir           string // snmpd's files (SNMP_PERSISTENT_DIR is Dir/snmp)
}

// PoESwitch starts the switch; guests maps a port ("1.3") to the script
// its power runs (GuestScript).
func (l *Lab) PoESwitch(t testing.TB, guests map[string]string) *PoESwitch {
	t.Helper()
	Need(t, "snmpd", "snmpd")
	Need(t, "python3", "python3")
	dir := t.TempDir()
	sw := &PoESwitch{Dir: dir, Sets: filepath.Join(dir, "sets.log"), CommunityFile: filepath.Join(dir, "poe.community")}
	agent := filepath.Join(dir, "poe.py")
	WriteFile(t, agent, poeAgent)
	if err := os.Chmod(agent, 0o755); err != nil {
		t.Fatal(err)
	}
	line := "pass_persist .1.3.6.1.2.1.105.1.1.1.3 " + agent + " " + sw.Sets
	for port, script := range guests {
		line += " " + port + "=" + script
	}
	conf := filepath.Join(dir, "snmpd.conf")
	WriteFile(t, conf, "agentAddress udp:"+Addr+":161\nrwcommunity Poe-w1 192.0.2.0/24\nrocommunity Poe-r0 192.0.2.0/24\n"+line+"\n")
	WriteFile(t, sw.CommunityFile, "Poe-w1\n")
	os.MkdirAll(filepath.Join(dir, "snmp"), 0o755)
	sw.Proc = StartIn(t, l.NS, "snmpd", "env", "SNMP_PERSISTENT_DIR="+filepath.Join(dir, "snmp"), "MIBS=",
		Sbin(t, "snmpd", "snmpd"), "-f", "-Lo", "-C", "-c", conf, "-p", filepath.Join(dir, "snmpd.pid"))
	sw.Proc.Expect(`NET-SNMP version`, 15*time.Second)
	return sw
}

// BMCPassword is the password of the simulated BMC's user admin.
const BMCPassword = "Bmc-s3cret"

// IPMISim is OpenIPMI's ipmi_sim in the lab's namespace, a BMC on
// Addr:623 (IPMI v2.0 lanplus, user admin, BMCPassword) whose power-on
// runs guest (GuestScript) and whose power-off kills it. It returns the
// file holding the password, for nodes.yaml's password_file.
func (l *Lab) IPMISim(t testing.TB, guest string) (passFile string, sim *Proc) {
	t.Helper()
	Need(t, "ipmi_sim", "openipmi")
	dir := t.TempDir()
	passFile = filepath.Join(dir, "bmc.pass")
	WriteFile(t, passFile, BMCPassword+"\n")
	conf := filepath.Join(dir, "lan.conf")
	WriteFile(t, conf, `name "ramboot-e2e"
set_working_mc 0x20
  startlan 1
    addr `+Addr+` 623
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
  user 2 true "admin" "`+BMCPassword+`" admin 10 none md2 md5 straight
`)
	emu := filepath.Join(dir, "sim.emu")
	WriteFile(t, emu, "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n")
	state := filepath.Join(dir, "ipmi-state")
	os.MkdirAll(state, 0o755)
	sim = StartIn(t, l.NS, "ipmi_sim", "ipmi_sim", "-c", conf, "-f", emu, "-s", state, "-n")
	time.Sleep(time.Second)
	return passFile, sim
}
