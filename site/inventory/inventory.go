// Package inventory reads nodes.yaml: which node gets which hostname,
// address and option 224. A node is matched by MAC, then by Pi serial,
// then the default entry.
//
//	defaults:
//	  option224: "nfs://{{.Server}}/srv/nfs/rack?vers=3&overlay"
//	nodes:
//	  - mac: dc:a6:32:01:36:c2
//	    hostname: pi-r1-01
//	    address: 192.0.2.101        # full DHCP mode only
//	  - serial: 9ffefdef
//	    hostname: pi-r1-02
//	    option224: shell
//
// Option 224 is a Go template with .MAC, .MACHyphen, .Serial, .Hostname and
// .Server (the server's address on the node's network).
//
// A node (or the defaults) may instead say what to install on its own disk
// and what to boot once installed (see install.go):
//
//	nodes:
//	  - mac: dc:a6:32:01:36:c3
//	    hostname: pi-r1-03
//	    install: {image: "http://{{.Server}}:8080/img/debian.raw.xz", sha256: 3f0c...}
//	    boot: local
//
// The site (package site, Site.Lookup) hands such a node the install form
// until it reports a successful install, then boot (default local).
//
// A Pi 4/CM4/Pi 5 that boots over HTTP gets its board's boot.img and
// boot.sig, or those in a directory of the served tree named by
// http_boot (a canary build, say):
//
//	nodes:
//	  - mac: dc:a6:32:01:36:c4
//	    http_boot: canary           # serves TREE/canary/boot.img and boot.sig
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Node is one inventory entry.
type Node struct {
	MAC        string `yaml:"mac"`
	Serial     string `yaml:"serial"`
	Hostname   string `yaml:"hostname"`
	Address    string `yaml:"address"`
	Option224  string `yaml:"option224"`
	TFTPPrefix string `yaml:"tftp_prefix"` // serial (default), mac, none
	// HTTPBoot is a directory of the served tree holding the boot.img and
	// boot.sig this node's EEPROM bootloader gets over HTTP instead of its
	// board's ("canary", a tree built with --http-boot --out TREE/canary):
	// relative, clean, without "..".
	HTTPBoot string `yaml:"http_boot"`
	// Install is what to write to the node's own disk (install.go).
	Install *Install `yaml:"install"`
	// Boot is option 224 once the install is done: local (the default)
	// or any other form. Only with an install (here or in defaults).
	Boot string `yaml:"boot"`
	// Discover (defaults only) is what a node nodes.yaml does not list
	// gets until it is enrolled (`ramboot node enroll`): "" the rest of
	// the defaults, as any unlisted node; DiscoverShell the provisioning
	// shell whatever the defaults say; DiscoverNone no answer at all.
	Discover string `yaml:"discover"`
	// Power is how the node's power is switched (power.go).
	Power *Power `yaml:"power"`

	line int
	mac  net.HardwareAddr
	ip   net.IP
	tmpl *template.Template
	boot *template.Template
	inst *Install // the install in force: own over the defaults'
}

// The values of defaults: discover:.
const (
	DiscoverShell = "shell"
	DiscoverNone  = "none"
)

// Inventory is a parsed nodes.yaml.
type Inventory struct {
	Defaults Node   `yaml:"defaults"`
	Nodes    []Node `yaml:"nodes"`

	byMAC    map[string]*Node
	bySerial map[string]*Node
}

// Vars are what an option 224 template may use.
type Vars struct {
	MAC       string // dc:a6:32:01:36:c2
	MACHyphen string // dc-a6-32-01-36-c2
	Serial    string // 9ffefdef
	Hostname  string
	Server    string // the server's IPv4 address
}

// Match is a node's resolved settings.
type Match struct {
	Hostname   string
	Address    net.IP
	Option224  string
	TFTPPrefix string
	HTTPBoot   string // http_boot: the tree's directory of the node's boot.img, "" for its board's
	Line       int    // 0 for defaults

	// Ignore: the node is not listed and defaults: discover: none says
	// it gets no answer.
	Ignore bool

	// For a node with install: (its own or the defaults'): Install is the
	// rendered install form, and Option224 is what the node gets once
	// installed (boot:, default "local"). The server picks one by the
	// node's recorded state. Install is "" for other nodes.
	Install string
	// InstallImage and InstallSHA256 are the rendered image URL and the
	// digest ("none" or 64 lower-case hex) of Install.
	InstallImage  string
	InstallSHA256 string
}

// Load reads and checks a file. On error the caller keeps its old
// inventory.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	inv, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return inv, nil
}

// Parse decodes and validates nodes.yaml. Errors name the line.
func Parse(data []byte) (*Inventory, error) {
	inv := &Inventory{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a typo is an error, not a silently dropped setting
	if err := dec.Decode(inv); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// Decode again as nodes, only to know each entry's line.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil && len(root.Content) > 0 {
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "nodes" {
				for j, n := range m.Content[i+1].Content {
					if j < len(inv.Nodes) {
						inv.Nodes[j].line = n.Line
					}
				}
			}
		}
	}
	inv.byMAC = map[string]*Node{}
	inv.bySerial = map[string]*Node{}
	var errs []error
	if err := inv.Defaults.check(true); err != nil {
		errs = append(errs, fmt.Errorf("defaults: %w", err))
	}
	if inv.Defaults.MAC != "" || inv.Defaults.Serial != "" || inv.Defaults.Address != "" {
		errs = append(errs, errors.New("defaults: mac, serial and address belong to a node, not to defaults"))
	}
	switch inv.Defaults.Discover {
	case "", DiscoverShell, DiscoverNone:
	default:
		errs = append(errs, fmt.Errorf("defaults: discover: %q: want %s (unlisted nodes get the provisioning shell) or %s (no answer until enrolled)", inv.Defaults.Discover, DiscoverShell, DiscoverNone))
	}
	// The defaults' install: applies to nodes with no entry once it names
	// an image; without one it is only a base for the nodes' own.
	if d := inv.Defaults.Install; len(errs) == 0 && d != nil && d.image != nil {
		if err := d.complete(); err != nil {
			errs = append(errs, fmt.Errorf("defaults: %w", err))
		}
		inv.Defaults.inst = d
	}
	hosts := map[string]int{}
	addrs := map[string]int{}
	for i := range inv.Nodes {
		n := &inv.Nodes[i]
		where := fmt.Sprintf("line %d", n.line)
		if err := n.check(false); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if n.mac == nil && n.Serial == "" {
			errs = append(errs, fmt.Errorf("%s: a node needs a mac or a serial to be matched by", where))
		}
		if n.Discover != "" {
			errs = append(errs, fmt.Errorf("%s: discover: is a defaults: setting (what unlisted nodes get)", where))
		}
		if p := n.Power.merged(inv.Defaults.Power); n.Power != nil && p != nil {
			if err := p.check(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
		if err := inv.checkInstall(n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if n.mac != nil {
			k := n.mac.String()
			if o, ok := inv.byMAC[k]; ok {
				errs = append(errs, fmt.Errorf("%s: mac %s is already on line %d", where, k, o.line))
			}
			inv.byMAC[k] = n
		}
		if n.Serial != "" {
			if o, ok := inv.bySerial[n.Serial]; ok {
				errs = append(errs, fmt.Errorf("%s: serial %s is already on line %d", where, n.Serial, o.line))
			}
			inv.bySerial[n.Serial] = n
		}
		if n.Hostname != "" {
			if l, ok := hosts[n.Hostname]; ok {
				errs = append(errs, fmt.Errorf("%s: hostname %s is already on line %d", where, n.Hostname, l))
			}
			hosts[n.Hostname] = n.line
		}
		if n.ip != nil {
			if l, ok := addrs[n.ip.String()]; ok {
				errs = append(errs, fmt.Errorf("%s: address %s is already on line %d", where, n.ip, l))
			}
			addrs[n.ip.String()] = n.line
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return inv, nil
}

// check validates an entry, or the defaults (isDefaults).
func (n *Node) check(isDefaults bool) error {
	if n.MAC != "" {
		mac, err := net.ParseMAC(strings.ReplaceAll(n.MAC, "-", ":"))
		if err != nil || len(mac) != 6 {
			return fmt.Errorf("mac %q: want six hex bytes like dc:a6:32:01:36:c2", n.MAC)
		}
		n.mac = mac
	}
	if n.Serial != "" {
		s := strings.ToLower(strings.TrimPrefix(n.Serial, "0x"))
		if len(s) != 8 || strings.Trim(s, "0123456789abcdef") != "" {
			return fmt.Errorf("serial %q: want the Pi's 8 hex digits like 9ffefdef (cat /proc/device-tree/serial-number, last 8)", n.Serial)
		}
		n.Serial = s
	}
	if n.Address != "" {
		ip := net.ParseIP(n.Address).To4()
		if ip == nil {
			return fmt.Errorf("address %q: want an IPv4 address", n.Address)
		}
		n.ip = ip
	}
	if n.Hostname != "" && !validHostname(n.Hostname) {
		return fmt.Errorf("hostname %q: use letters, digits and dashes (RFC 1123)", n.Hostname)
	}
	switch n.TFTPPrefix {
	case "", "serial", "mac", "none":
	default:
		return fmt.Errorf("tftp_prefix %q: use serial, mac or none", n.TFTPPrefix)
	}
	if n.HTTPBoot != "" && !validHTTPBootDir(n.HTTPBoot) {
		return fmt.Errorf("http_boot %q: want a directory of the served tree holding boot.img and boot.sig, relative, without \"..\" or \"//\", in letters, digits and ._-/, like canary or canary/rpi4", n.HTTPBoot)
	}
	if n.Option224 != "" {
		t, err := template.New("option224").Option("missingkey=error").Parse(n.Option224)
		if err != nil {
			return fmt.Errorf("option224: %v", err)
		}
		if err := t.Execute(&bytes.Buffer{}, Vars{}); err != nil {
			return fmt.Errorf("option224: %v (fields: .MAC .MACHyphen .Serial .Hostname .Server)", err)
		}
		n.tmpl = t
	}
	if n.Install != nil {
		// The defaults may hold option224 for the nodes that install
		// nothing and an install: base (no image) for those that do.
		if n.Option224 != "" && (!isDefaults || n.Install.Image != "") {
			return errors.New("option224 and install: on one node: an installing node boots its installed system with boot: (default local); drop option224, or drop install: to keep the node on option224")
		}
		if err := n.Install.check(); err != nil {
			return err
		}
	}
	if n.Boot != "" {
		t, err := parseBoot(n.Boot)
		if err != nil {
			return err
		}
		n.boot = t
	}
	return nil
}

// validHTTPBootDir reports whether d names a directory inside the tree:
// relative, clean (path.Clean leaves it as it is), not the root, no ".."
// element, and only [A-Za-z0-9._-/].
func validHTTPBootDir(d string) bool {
	if strings.HasPrefix(d, "/") || path.Clean(d) != d || d == "." {
		return false
	}
	for _, el := range strings.Split(d, "/") {
		if el == ".." {
			return false
		}
	}
	return strings.Trim(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") == ""
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Lookup resolves a node by MAC, then serial, then the defaults. ok is
// false when no entry and no defaults apply.
func (inv *Inventory) Lookup(mac net.HardwareAddr, serial string, server net.IP) (Match, bool, error) {
	var n *Node
	if inv != nil {
		if mac != nil {
			n = inv.byMAC[mac.String()]
		}
		if n == nil && serial != "" {
			n = inv.bySerial[strings.ToLower(serial)]
		}
	}
	d := Node{}
	if inv != nil {
		d = inv.Defaults
	}
	if n == nil {
		switch d.Discover {
		case DiscoverNone:
			return Match{Ignore: true}, true, nil
		case DiscoverShell:
			return Match{TFTPPrefix: "serial", Option224: "shell"}, true, nil
		}
	}
	if n == nil && d.Option224 == "" && d.Hostname == "" && d.TFTPPrefix == "" && d.HTTPBoot == "" && d.Install == nil {
		return Match{}, false, nil
	}
	m := Match{TFTPPrefix: d.TFTPPrefix, HTTPBoot: d.HTTPBoot, Hostname: d.Hostname}
	tmpl := d.tmpl
	if n != nil {
		m.Line = n.line
		if n.Hostname != "" {
			m.Hostname = n.Hostname
		}
		m.Address = n.ip
		if n.TFTPPrefix != "" {
			m.TFTPPrefix = n.TFTPPrefix
		}
		if n.HTTPBoot != "" {
			m.HTTPBoot = n.HTTPBoot
		}
		if n.tmpl != nil {
			tmpl = n.tmpl
		}
	}
	if m.TFTPPrefix == "" {
		m.TFTPPrefix = "serial"
	}
	v := Vars{Serial: serial, Hostname: m.Hostname}
	if mac != nil {
		v.MAC = mac.String()
		v.MACHyphen = strings.ReplaceAll(v.MAC, ":", "-")
	}
	if server != nil {
		v.Server = server.String()
	}
	// A node's own option224 keeps it off the defaults' install; a node's
	// own install: takes it off the defaults' option224.
	in := d.inst
	if n != nil {
		in = n.inst
	}
	if in != nil {
		form, image, err := in.render(v)
		if err != nil {
			return m, true, fmt.Errorf("install for %s: %w", v.MAC, err)
		}
		m.Install, m.InstallImage, m.InstallSHA256 = form, image, in.SHA256
		tmpl = d.boot
		if n != nil && n.boot != nil {
			tmpl = n.boot
		}
		if tmpl == nil {
			m.Option224 = "local"
			return m, true, nil
		}
	}
	if tmpl != nil {
		var b bytes.Buffer
		if err := tmpl.Execute(&b, v); err != nil {
			return m, true, fmt.Errorf("option224 for %s: %w", v.MAC, err)
		}
		m.Option224 = b.String()
	}
	return m, true, nil
}
