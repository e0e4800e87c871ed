// Package power switches a node's power: a BMC over IPMI v2.0 (lanplus),
// a PoE switch port over SNMP (POWER-ETHERNET-MIB, RFC 3621:
// pethPsePortAdminEnable), or any program (MAAS's webhook idea), as the
// node's nodes.yaml power: entry says (site/inventory.Power).
//
//	d, err := power.New(p, "web-1", "52:54:00:12:34:61")
//	state, err := d.Do(ctx, power.Cycle) // "on" or "off" afterwards
//
// Secrets (a BMC password, an SNMP community) are read from their files
// when an action runs and appear in no error and no log line.
package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/gosnmp/gosnmp"

	"github.com/ramboot/ramboot/site/inventory"
)

// Action is what to do.
type Action string

// The actions.
const (
	On     Action = "on"
	Off    Action = "off"
	Cycle  Action = "cycle"
	Status Action = "status"
)

// ParseAction reads an action's name.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case On, Off, Cycle, Status:
		return a, nil
	}
	return "", fmt.Errorf("power action %q: want on, off, cycle or status", s)
}

// Timeout bounds one action's exchanges with a switch or a command, and
// ipmiTimeout with a BMC (its session setup included); a cycle's wait
// comes on top.
const (
	Timeout     = 20 * time.Second
	ipmiTimeout = 60 * time.Second
)

// Driver switches one node's power.
type Driver interface {
	// Do carries out a and returns the power state afterwards ("on" or
	// "off"; "" if the driver cannot tell).
	Do(ctx context.Context, a Action) (string, error)
	// String names the driver and its target, without secrets:
	// "ipmi 192.0.2.50", "poe 192.0.2.60 port 1.3".
	String() string
}

// New is the driver for a node's power entry (inventory.PowerOf); name
// and mac are the node's (for the command driver's arguments).
func New(p *inventory.Power, name, mac string) (Driver, error) {
	if p == nil {
		return nil, errors.New("no power: entry in nodes.yaml (nor in its defaults)")
	}
	wait := time.Duration(p.CycleWait) * time.Second
	if p.CycleWait == 0 {
		wait = 5 * time.Second
	}
	switch p.Driver {
	case inventory.PowerIPMI:
		return &ipmiDriver{addr: withPort(p.Address, 623), user: p.Username, passFile: p.PasswordFile, wait: wait}, nil
	case inventory.PowerPoE:
		g, n, err := p.PoEPort()
		if err != nil {
			return nil, err
		}
		return &poeDriver{addr: withPort(p.Address, 161), group: g, port: n, communityFile: p.CommunityFile, wait: wait}, nil
	case inventory.PowerCommand:
		if p.Command == "" {
			return nil, errors.New("power: driver command needs command")
		}
		return &commandDriver{cmd: p.Command, name: name, mac: mac}, nil
	}
	return nil, fmt.Errorf("power: driver %q: want ipmi, poe or command", p.Driver)
}

func withPort(a string, port int) string {
	if _, _, err := net.SplitHostPort(a); err == nil {
		return a
	}
	return net.JoinHostPort(a, strconv.Itoa(port))
}

// secret reads a secret file's first line.
func secret(what, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s, _, _ := strings.Cut(string(b), "\n")
	if s = strings.TrimSpace(s); s == "" {
		return "", fmt.Errorf("%s %s is empty", what, path)
	}
	return s, nil
}

// ipmiDriver is a BMC over IPMI v2.0 (RMCP+, lanplus).
type ipmiDriver struct {
	addr, user, passFile string
	wait                 time.Duration
}

func (d *ipmiDriver) String() string { return "ipmi " + d.addr }

func (d *ipmiDriver) Do(ctx context.Context, a Action) (string, error) {
	pass, err := secret("password_file", d.passFile)
	if err != nil {
		return "", err
	}
	host, port, _ := net.SplitHostPort(d.addr)
	pn, _ := strconv.Atoi(port)
	c, err := client.NewClient(host, pn, d.user, pass)
	if err != nil {
		return "", err
	}
	// RMCP+ negotiates a cipher suite, and a BMC may not answer a suite it
	// lacks (OpenIPMI's does not answer 17): short tries, so that the
	// whole negotiation fits in ipmiTimeout.
	c.WithInterface(client.InterfaceLanplus)
	c.WithTimeout(2 * time.Second)
	c.WithRetry(2)
	cctx, cancel := context.WithTimeout(ctx, ipmiTimeout)
	defer cancel()
	if err := c.Connect(cctx); err != nil {
		return "", fmt.Errorf("connecting as %s: %w", d.user, err)
	}
	defer c.Close(context.Background())
	control := func(cc chassis.ChassisControl) error {
		if _, err := c.ChassisControl(cctx, cc); err != nil {
			return fmt.Errorf("chassis control %d: %w", cc, err)
		}
		return nil
	}
	status := func() (bool, error) {
		st, err := c.GetChassisStatus(cctx)
		if err != nil {
			return false, fmt.Errorf("chassis status: %w", err)
		}
		return st.PowerIsOn, nil
	}
	// until waits for the BMC to report the power state asked for: a
	// power-down takes the time the machine (or the BMC) takes.
	until := func(on bool) error {
		for {
			is, err := status()
			if err != nil || is == on {
				return err
			}
			if err := sleep(cctx, 500*time.Millisecond); err != nil {
				return fmt.Errorf("the BMC still reports power %s: %w", onOff(is), err)
			}
		}
	}
	switch a {
	case On:
		if err = control(chassis.ChassisControlPowerUp); err == nil {
			err = until(true)
		}
	case Off:
		if err = control(chassis.ChassisControlPowerDown); err == nil {
			err = until(false)
		}
	case Cycle:
		// Off, wait, on: what `ipmitool chassis power cycle` asks of a BMC
		// in one command, done in steps so that an off machine comes on
		// too and the off time is the one configured.
		if err = control(chassis.ChassisControlPowerDown); err == nil {
			if err = until(false); err == nil {
				if err = sleep(ctx, d.wait); err == nil {
					if err = control(chassis.ChassisControlPowerUp); err == nil {
						err = until(true)
					}
				}
			}
		}
	}
	if err != nil {
		return "", err
	}
	on, err := status()
	if err != nil {
		return "", err
	}
	return onOff(on), nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// pethPsePortAdminEnable is POWER-ETHERNET-MIB's per-port switch
// (1.3.6.1.2.1.105.1.1.1.3.GROUP.PORT): true(1) powers the port,
// false(2) cuts it.
const pethPsePortAdminEnable = ".1.3.6.1.2.1.105.1.1.1.3"

// poeDriver is a PoE switch port over SNMP v2c.
type poeDriver struct {
	addr          string
	group, port   int
	communityFile string
	wait          time.Duration
}

func (d *poeDriver) String() string {
	return fmt.Sprintf("poe %s port %d.%d", d.addr, d.group, d.port)
}

func (d *poeDriver) Do(ctx context.Context, a Action) (string, error) {
	community, err := secret("community_file", d.communityFile)
	if err != nil {
		return "", err
	}
	host, port, _ := net.SplitHostPort(d.addr)
	pn, _ := strconv.Atoi(port)
	g := &gosnmp.GoSNMP{Target: host, Port: uint16(pn), Community: community, Version: gosnmp.Version2c,
		Timeout: 2 * time.Second, Retries: 2, Context: ctx}
	if err := g.Connect(); err != nil {
		return "", err
	}
	defer g.Conn.Close()
	oid := fmt.Sprintf("%s.%d.%d", pethPsePortAdminEnable, d.group, d.port)
	set := func(v int) error {
		r, err := g.Set([]gosnmp.SnmpPDU{{Name: oid, Type: gosnmp.Integer, Value: v}})
		if err != nil {
			return fmt.Errorf("SNMP set %s = %d: %w", oid, v, err)
		}
		if r.Error != gosnmp.NoError {
			return fmt.Errorf("SNMP set %s = %d: the switch says %s (a read-only community, or no such port?)", oid, v, r.Error)
		}
		return nil
	}
	switch a {
	case On:
		err = set(1)
	case Off:
		err = set(2)
	case Cycle:
		if err = set(2); err == nil {
			if err = sleep(ctx, d.wait); err == nil {
				err = set(1)
			}
		}
	}
	if err != nil {
		return "", err
	}
	r, err := g.Get([]string{oid})
	if err != nil {
		return "", fmt.Errorf("SNMP get %s: %w", oid, err)
	}
	if len(r.Variables) != 1 || r.Variables[0].Type != gosnmp.Integer {
		return "", fmt.Errorf("SNMP get %s: no such port on the switch (%v)", oid, r.Variables)
	}
	switch gosnmp.ToBigInt(r.Variables[0].Value).Int64() {
	case 1:
		return "on", nil
	case 2:
		return "off", nil
	}
	return "", fmt.Errorf("SNMP get %s: %v, want true(1) or false(2)", oid, r.Variables[0].Value)
}

// commandDriver runs a program: COMMAND ACTION NAME MAC. For status (and
// after any action) the first word it prints, if on or off, is the state.
type commandDriver struct{ cmd, name, mac string }

func (d *commandDriver) String() string { return "command " + d.cmd }

func (d *commandDriver) Do(ctx context.Context, a Action) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cmd, string(a), d.name, d.mac)
	out, err := cmd.CombinedOutput()
	words := strings.Fields(string(out))
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return "", fmt.Errorf("%s %s: %v: %s", d.cmd, a, err, msg)
	}
	if len(words) > 0 && (words[0] == "on" || words[0] == "off") {
		return words[0], nil
	}
	return "", nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
