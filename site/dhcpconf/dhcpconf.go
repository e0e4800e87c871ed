// Package dhcpconf writes configurations for the DHCP servers sites
// already run (Kea, ISC dhcpd, dnsmasq) that do ramboot's DHCP part from
// one nodes.yaml: the Raspberry Pi bootloader's dialect, option 224 per
// node, next-server and the PC/iPXE boot files — what `ramboot serve`
// answers itself (server/dhcp), written for another server.
//
// The tree (TFTP) and the iPXE scripts (HTTP, /boot/<mac>.ipxe) are still
// served by `ramboot serve` (with --dhcp off) or another server at the
// same address.
package dhcpconf

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"

	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/site/inventory"
)

// Formats are the supported --format values.
var Formats = []string{"kea", "isc", "dnsmasq"}

// Options is what to generate.
type Options struct {
	Format    string               // kea, isc or dnsmasq
	Inventory *inventory.Inventory // may be nil: no per-node entries
	Source    string               // where the inventory came from, for the header
	Server    net.IP               // the ramboot server (TFTP, HTTP)
	Net       *net.IPNet           // the server's network
	Interface string               // the interface the DHCP server listens on
	// From and To bound the address pool. Both nil: a fragment for an
	// existing configuration that hands out no addresses itself.
	From, To net.IP
	// HTTPPort is ramboot's HTTP port for iPXE scripts (default 8080).
	HTTPPort int
	// PXELinux sends BIOS PCs (their firmware's PXE client and iPXE
	// ROMs alike, option 93 = 0) to pxelinux.0 by TFTP, which reads
	// pxelinux.cfg/ (`ramboot pxelinux` writes it), instead of iPXE and
	// its script: the classic tftpd-hpa + pxelinux setup. UEFI PCs still
	// get iPXE.
	PXELinux bool
}

// PXELinuxFile is the boot file BIOS PCs get with Options.PXELinux.
const PXELinuxFile = "pxelinux.0"

// ParseServer reads --server: ADDR or ADDR/PREFIX (default /24).
func ParseServer(s string) (net.IP, *net.IPNet, error) {
	if s == "" {
		return nil, nil, errors.New("--server is required: the ramboot server's IPv4 address on the nodes' network, like 192.0.2.10 or 192.0.2.10/24")
	}
	if strings.Contains(s, "/") {
		ip, n, err := net.ParseCIDR(s)
		if err != nil || ip.To4() == nil {
			return nil, nil, fmt.Errorf("--server %q: want an IPv4 address with an optional prefix, like 192.0.2.10/24", s)
		}
		if ones, _ := n.Mask.Size(); ones > 30 || ones < 8 {
			return nil, nil, fmt.Errorf("--server %q: prefix /%d leaves no room for clients; use /8 to /30", s, ones)
		}
		return ip.To4(), &net.IPNet{IP: n.IP.To4(), Mask: n.Mask}, nil
	}
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return nil, nil, fmt.Errorf("--server %q: want an IPv4 address, like 192.0.2.10 (or 192.0.2.10/24)", s)
	}
	m := net.CIDRMask(24, 32)
	return ip, &net.IPNet{IP: ip.Mask(m), Mask: m}, nil
}

// ParseRange reads --range FROM-TO and checks it against the server's
// network.
func ParseRange(s string, server net.IP, n *net.IPNet) (net.IP, net.IP, error) {
	a, b, ok := strings.Cut(s, "-")
	from, to := net.ParseIP(strings.TrimSpace(a)).To4(), net.ParseIP(strings.TrimSpace(b)).To4()
	if !ok || from == nil || to == nil {
		return nil, nil, fmt.Errorf("--range %q: want FROM-TO with two IPv4 addresses, like 192.0.2.100-192.0.2.199", s)
	}
	if u32(from) > u32(to) {
		return nil, nil, fmt.Errorf("--range %q: FROM is after TO; write it as %s-%s", s, to, from)
	}
	if !n.Contains(from) || !n.Contains(to) {
		return nil, nil, fmt.Errorf("--range %q is not inside %s, the --server's network; give --server ADDR/PREFIX for another prefix", s, n)
	}
	bcast := u32(n.IP) | ^binary.BigEndian.Uint32(n.Mask)
	if u32(from) == u32(n.IP) || u32(to) == bcast {
		return nil, nil, fmt.Errorf("--range %q holds %s's network or broadcast address; start after %s and end before %s", s, n, n.IP, ipOf(bcast))
	}
	if u32(server) >= u32(from) && u32(server) <= u32(to) {
		return nil, nil, fmt.Errorf("--range %q holds the server's own address %s; leave it out", s, server)
	}
	return from, to, nil
}

func u32(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func ipOf(v uint32) net.IP {
	b := make(net.IP, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}

// host is one inventory node a DHCP server can match: by MAC.
type host struct {
	tag       string // node1, node2, ...
	mac       string // dc:a6:32:01:36:c2
	hostname  string
	address   string
	option224 string
	line      int
}

// model is what every format writes, resolved once.
type model struct {
	Options
	def224   string
	hosts    []host
	skipped  []string // comments on nodes no DHCP server can match
	piMenu   []byte
	pi3Menu  []byte
	ipxeBase string // http://S:8080/boot/${mac:hexhyp}.ipxe?arch=
}

// x86Arches are option 93 values of x86 clients (dhcp.IsX86).
var x86Arches = []uint16{dhcp.ArchBIOS, dhcp.ArchEFIIA32, dhcp.ArchEFIBC, dhcp.ArchEFIx64, dhcp.ArchHTTPx64}

// Generate writes the configuration for o.Format to w.
func Generate(w io.Writer, o Options) error {
	var gen func(*model) []byte
	switch o.Format {
	case "kea":
		gen = kea
	case "isc":
		gen = isc
	case "dnsmasq":
		gen = dnsmasq
	default:
		return fmt.Errorf("unknown --format %q: use %s", o.Format, strings.Join(Formats, ", "))
	}
	m, err := build(o)
	if err != nil {
		return err
	}
	_, err = w.Write(gen(m))
	return err
}

func build(o Options) (*model, error) {
	if o.Server == nil || o.Server.To4() == nil || o.Net == nil {
		return nil, errors.New("dhcpconf: no --server address")
	}
	if o.Interface == "" || strings.ContainsAny(o.Interface, " \t\"'\\,{}#;") {
		return nil, fmt.Errorf("--interface %q: want the name of the interface that faces the nodes, like eth1", o.Interface)
	}
	if (o.From == nil) != (o.To == nil) {
		return nil, errors.New("dhcpconf: a range needs both ends")
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = 8080
	}
	o.Server = o.Server.To4()
	m := &model{
		Options:  o,
		piMenu:   dhcp.PiMenu("Raspberry Pi Boot"),
		pi3Menu:  dhcp.PiMenu(dhcp.Pi3Menu),
		ipxeBase: fmt.Sprintf("http://%s:%d/boot/${mac:hexhyp}.ipxe?arch=", o.Server, o.HTTPPort),
	}
	inv := o.Inventory
	if inv == nil {
		return m, nil
	}
	// The defaults go to every client not listed, so they must not vary
	// per client: render them for two made-up clients and compare.
	a, k, err := unlisted(inv, o.Server, 0)
	if err != nil {
		return nil, fmt.Errorf("defaults: %w", err)
	}
	b, _, err := unlisted(inv, o.Server, k+1)
	if err != nil {
		return nil, fmt.Errorf("defaults: %w", err)
	}
	if a.Option224 != b.Option224 {
		return nil, fmt.Errorf("defaults: option224 %q uses .MAC, .MACHyphen or .Serial, which a DHCP server's config cannot fill in per client; use only {{.Server}} in defaults, or give each node its own option224", inv.Defaults.Option224)
	}
	if err := checkValue(a.Option224); err != nil {
		return nil, fmt.Errorf("defaults: option224: %w", err)
	}
	m.def224 = a.Option224
	if a.Install != "" {
		m.skipped = append(m.skipped, installNote("the defaults' install: (every node not listed)", a))
	}
	for i, n := range inv.Nodes {
		if n.MAC == "" {
			m.skipped = append(m.skipped, fmt.Sprintf("node %d (serial %s) has no mac: a DHCP server can match the serial only in the Pi bootloader's option 97, which ramboot's init does not send, so it gets the defaults. Add its mac: to nodes.yaml to give it its own option 224, hostname or address.", i+1, n.Serial))
			continue
		}
		mac, err := net.ParseMAC(strings.ReplaceAll(n.MAC, "-", ":"))
		if err != nil {
			return nil, fmt.Errorf("node %d: mac %q: %v", i+1, n.MAC, err)
		}
		r, _, err := inv.Lookup(mac, n.Serial, o.Server)
		if err != nil {
			return nil, err
		}
		if err := checkValue(r.Option224); err != nil {
			return nil, fmt.Errorf("nodes.yaml line %d: option224: %w", r.Line, err)
		}
		if r.Install != "" {
			m.skipped = append(m.skipped, installNote(fmt.Sprintf("node %s (nodes.yaml line %d) has install:", mac, r.Line), r))
		}
		h := host{tag: fmt.Sprintf("node%d", i+1), mac: mac.String(), hostname: r.Hostname, option224: r.Option224, line: r.Line}
		if r.Address != nil {
			h.address = r.Address.String()
			if o.From != nil && !o.Net.Contains(r.Address) {
				return nil, fmt.Errorf("nodes.yaml line %d: address %s is not in %s, the --server's network; change it, or give --server ADDR/PREFIX", r.Line, r.Address, o.Net)
			}
			if r.Address.Equal(o.Server) {
				return nil, fmt.Errorf("nodes.yaml line %d: address %s is the server's own; pick another", r.Line, r.Address)
			}
		}
		m.hosts = append(m.hosts, h)
	}
	sort.SliceStable(m.hosts, func(i, j int) bool { return m.hosts[i].line < m.hosts[j].line })
	return m, nil
}

// unlisted looks up the first made-up client from number k on that is
// not in the inventory (neither its MAC nor its serial), so that the
// defaults' rendering is never a listed node's; it returns the client's
// number too.
func unlisted(inv *inventory.Inventory, server net.IP, k uint32) (inventory.Match, uint32, error) {
	for ; ; k++ {
		mac := net.HardwareAddr{2, 0, byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
		m, _, err := inv.Lookup(mac, fmt.Sprintf("%08x", k+1), server)
		if err != nil || m.Line == 0 {
			return m, k, err
		}
	}
}

// installNote says what a static config does with an install: entry.
// The lifecycle (install once, then boot: until a reinstall) is state
// that only `ramboot serve` keeps; a DHCP server's config hands out one
// option 224, so it gets the boot: form, and the install form is printed
// for the operator to give for one boot.
func installNote(who string, r inventory.Match) string {
	form := r.Install
	if len(form) > 255 {
		fix := "serve the image, keys and seed at shorter URLs"
		if strings.Count(form, "#sha256=") > 1 {
			// keys: and seed: digests: 72 and 137 bytes.
			fix += ", or give keys: and seed: without their #sha256= digests (ramboot serve sends the whole form, as several options)"
		}
		form = fmt.Sprintf("(%d bytes, more than a DHCP option holds: %s)", len(form), fix)
	}
	return fmt.Sprintf("%s; this config gives it the boot: form %q. A DHCP server's config cannot follow the install lifecycle (install once, then boot, until a reinstall): only `ramboot serve` keeps that state. To install with this server, set its option 224 to the install form for one boot, then back: %s", who, r.Option224, form)
}

// checkValue refuses option values no config syntax can carry as text.
func checkValue(s string) error {
	if len(s) > 255 {
		return fmt.Errorf("%d bytes; a DHCP option holds at most 255", len(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q holds a control character; remove it", s)
		}
	}
	return nil
}

// colonHex is 06:01:03:... (ISC, dnsmasq).
func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

// quote is a double-quoted string with \ and " escaped (ISC, dnsmasq).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func header(b *bytes.Buffer, m *model, c string, tool string) {
	p := func(format string, a ...any) { fmt.Fprintf(b, c+" "+format+"\n", a...) }
	src := m.Source
	if src == "" {
		src = "no inventory"
	}
	p("Generated by `ramboot dhcp-config --format %s` from %s.", m.Format, src)
	p("Does ramboot's DHCP part: the Raspberry Pi bootloader's boot menu (option 43/60,")
	p("padded for the Pi 3), option 224 for ramboot's init, BIOS/UEFI PXE boot files and")
	p("iPXE's script URL, all pointing at the ramboot server %s. Serve the tree there", m.Server)
	p("with `ramboot serve --dhcp off` (TFTP, and HTTP :%d for /boot/<mac>.ipxe).", m.HTTPPort)
	if m.PXELinux {
		p("BIOS PCs (PXE firmware and iPXE ROMs) get %s and pxelinux.cfg/ by TFTP instead:", PXELinuxFile)
		p("write pxelinux.cfg/ with `ramboot pxelinux` (any TFTP server, like tftpd-hpa, can serve the tree).")
	}
	p("Check: %s", tool)
	for _, s := range m.skipped {
		p("Note: %s", s)
	}
}

func hexStr(b []byte) string { return hex.EncodeToString(b) }

// piOUIsNot3 are the Pi MAC prefixes other than the Pi 3's, as bytes.
func piOUIsNot3() [][]byte {
	var out [][]byte
	for _, o := range dhcp.PiOUIs {
		if o == dhcp.Pi3OUI {
			continue
		}
		b, _ := hex.DecodeString(strings.ReplaceAll(o, ":", ""))
		out = append(out, b)
	}
	return out
}
