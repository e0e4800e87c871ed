package inventory

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// Power is how a node's power is switched (package power does it):
//
//	defaults:
//	  power: {driver: poe, address: 192.0.2.60, community_file: /etc/ramboot/poe.community}
//	nodes:
//	  - mac: dc:a6:32:01:36:c2
//	    power: {port: "1.3"}          # the switch's PoE group 1, port 3
//	  - mac: 52:54:00:12:34:61
//	    power: {driver: ipmi, address: 192.0.2.50, username: admin, password_file: /etc/ramboot/bmc-web-1.pass}
//	  - mac: 52:54:00:12:34:62
//	    power: {driver: command, command: /usr/local/bin/pdu}   # run as: pdu on|off|cycle|status NODE MAC
//
// A node's power: fills in the defaults' field by field. Secrets are only
// ever read from files, when an action runs, and never printed.
type Power struct {
	// Driver is ipmi (IPMI v2.0 lanplus to a BMC), poe (a PoE switch
	// port over SNMP, POWER-ETHERNET-MIB pethPsePortAdminEnable) or
	// command (any program).
	Driver string `yaml:"driver"`
	// Address is the BMC's or the switch's, host or host:port (IPMI
	// 623, SNMP 161).
	Address string `yaml:"address"`
	// Port is the PoE port: "GROUP.PORT" or "PORT" (group 1).
	Port string `yaml:"port"`
	// Username and PasswordFile log in to a BMC.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// CommunityFile holds the switch's SNMP v2c write community.
	CommunityFile string `yaml:"community_file"`
	// Command is the program the command driver runs, with the action,
	// the node's name and its MAC as arguments; for status it prints on
	// or off.
	Command string `yaml:"command"`
	// CycleWait is how long a cycle keeps the power off, in seconds
	// (default 5).
	CycleWait int `yaml:"cycle_wait"`
}

// The power drivers.
const (
	PowerIPMI    = "ipmi"
	PowerPoE     = "poe"
	PowerCommand = "command"
)

// merged is p over the defaults d, field by field.
func (p *Power) merged(d *Power) *Power {
	if p == nil && d == nil {
		return nil
	}
	out := Power{}
	if d != nil {
		out = *d
	}
	if p != nil {
		for _, f := range []struct {
			dst *string
			src string
		}{
			{&out.Driver, p.Driver}, {&out.Address, p.Address}, {&out.Port, p.Port}, {&out.Username, p.Username},
			{&out.PasswordFile, p.PasswordFile}, {&out.CommunityFile, p.CommunityFile}, {&out.Command, p.Command},
		} {
			if f.src != "" {
				*f.dst = f.src
			}
		}
		if p.CycleWait != 0 {
			out.CycleWait = p.CycleWait
		}
	}
	return &out
}

// check validates a node's power: in force (over the defaults).
func (p *Power) check() error {
	if p.CycleWait < 0 || p.CycleWait > 300 {
		return fmt.Errorf("power: cycle_wait %d: want 0 to 300 seconds", p.CycleWait)
	}
	need := func(field, v, what string) error {
		if v == "" {
			return fmt.Errorf("power: driver %s needs %s (%s)", p.Driver, field, what)
		}
		return nil
	}
	abs := func(field, v string) error {
		if v != "" && !filepath.IsAbs(v) {
			return fmt.Errorf("power: %s %q: want an absolute path (secrets are read from files, never written in nodes.yaml)", field, v)
		}
		return nil
	}
	var errs []error
	switch p.Driver {
	case PowerIPMI:
		errs = append(errs, need("address", p.Address, "the BMC's address"), need("username", p.Username, "the BMC user"),
			need("password_file", p.PasswordFile, "a file holding the BMC password"), abs("password_file", p.PasswordFile), checkHostPort(p.Address))
	case PowerPoE:
		errs = append(errs, need("address", p.Address, "the switch's address"), need("port", p.Port, `the PoE port, "GROUP.PORT" or "PORT"`),
			need("community_file", p.CommunityFile, "a file holding the SNMP write community"), abs("community_file", p.CommunityFile), checkHostPort(p.Address))
		if _, _, err := p.PoEPort(); p.Port != "" && err != nil {
			errs = append(errs, err)
		}
	case PowerCommand:
		errs = append(errs, need("command", p.Command, "the program to run"), abs("command", p.Command))
	case "":
		return errors.New("power: driver: want ipmi, poe or command")
	default:
		return fmt.Errorf("power: driver %q: want ipmi, poe or command", p.Driver)
	}
	return errors.Join(errs...)
}

// PoEPort is Port as the MIB indexes it: group and port.
func (p *Power) PoEPort() (group, port int, err error) {
	g, n, ok := strings.Cut(p.Port, ".")
	if !ok {
		g, n = "1", p.Port
	}
	group, err1 := strconv.Atoi(g)
	port, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil || group < 1 || port < 1 || group > 1<<16 || port > 1<<16 {
		return 0, 0, fmt.Errorf("power: port %q: want GROUP.PORT or PORT, like 1.3 or 3", p.Port)
	}
	return group, port, nil
}

func checkHostPort(a string) error {
	if a == "" {
		return nil
	}
	host := a
	if h, port, err := net.SplitHostPort(a); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("power: address %q: bad port", a)
		}
		host = h
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return fmt.Errorf("power: address %q: want a host or host:port", a)
	}
	return nil
}

// PowerOf is the power: in force for the node with this MAC or serial (its
// own over the defaults'), nil if none.
func (inv *Inventory) PowerOf(mac net.HardwareAddr, serial string) *Power {
	if inv == nil {
		return nil
	}
	var n *Node
	if mac != nil {
		n = inv.byMAC[mac.String()]
	}
	if n == nil && serial != "" {
		n = inv.bySerial[strings.ToLower(serial)]
	}
	if n == nil {
		return nil
	}
	return n.Power.merged(inv.Defaults.Power)
}
