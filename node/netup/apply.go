//go:build linux

package netup

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkConfig is what ConfigureLink sets on the interface.
type LinkConfig struct {
	Addr      net.IPNet // address and prefix
	Broadcast net.IP
	// Gateway is the default route's next hop; nil means no route.
	Gateway net.IP
	// GatewayOnLink is set when Gateway is outside Addr's subnet (e.g. a
	// /32 lease); the route is then added with the onlink flag.
	GatewayOnLink bool
}

// linkConfig computes the interface configuration from an ACK: yiaddr,
// option 1 (else the classful mask), option 28 (else computed), first
// usable router of option 3.
func linkConfig(ack *dhcpv4.DHCPv4) (LinkConfig, error) {
	ip := ack.YourIPAddr.To4()
	if ip == nil || ip.Equal(net.IPv4zero) {
		return LinkConfig{}, errNoAddrInAck
	}
	mask := ack.SubnetMask()
	if len(mask) != net.IPv4len {
		mask = ip.DefaultMask()
	}
	if ones, bits := mask.Size(); bits == 0 || ones == 0 {
		return LinkConfig{}, fmt.Errorf("the DHCP server sent an unusable subnet mask %v", net.IP(mask))
	}
	lc := LinkConfig{Addr: net.IPNet{IP: ip, Mask: mask}}
	if b := ack.BroadcastAddress(); b != nil && b.To4() != nil && !b.IsUnspecified() {
		lc.Broadcast = b.To4()
	} else {
		var bc [4]byte
		binary.BigEndian.PutUint32(bc[:], binary.BigEndian.Uint32(ip)|^binary.BigEndian.Uint32(mask))
		lc.Broadcast = net.IP(bc[:])
	}
	for _, gw := range ack.Router() {
		gw = gw.To4()
		if gw == nil || gw.IsUnspecified() || gw.Equal(ip) {
			continue
		}
		lc.Gateway = gw
		lc.GatewayOnLink = !lc.Addr.Contains(gw)
		break
	}
	return lc, nil
}

// resolvConf renders /etc/resolv.conf.
func resolvConf(dns []net.IP, search []string) []byte {
	var b bytes.Buffer
	b.WriteString("# written by ramboot init from DHCP\n")
	var names []string
	for _, s := range search {
		// A server's domain names are data: one with spaces, control
		// characters or a newline would add lines (a nameserver of its
		// choosing) to the file.
		if validDomain(s) {
			names = append(names, s)
		}
	}
	if len(names) > 0 {
		b.WriteString("search " + strings.Join(names, " ") + "\n")
	}
	for i, ip := range dns {
		if i == 3 { // the resolver reads at most three
			break
		}
		fmt.Fprintf(&b, "nameserver %v\n", ip)
	}
	return b.Bytes()
}

// validDomain accepts a DNS name: letters, digits, '-', '_' and '.',
// at most 253 bytes.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ResolvConfPath is where the default WriteResolvConf writes.
const ResolvConfPath = "/etc/resolv.conf"

func writeResolvConf(content []byte) error {
	if err := os.MkdirAll("/etc", 0o755); err != nil {
		return err
	}
	return os.WriteFile(ResolvConfPath, content, 0o644)
}

// configureLink is the default ConfigureLink: netlink address and route.
func configureLink(iface string, lc LinkConfig) error {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return err
	}
	addr := lc.Addr
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: &addr, Broadcast: lc.Broadcast}); err != nil {
		return fmt.Errorf("address %v: %w", &addr, err)
	}
	if lc.Gateway == nil {
		return nil
	}
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Gw:        lc.Gateway,
		Protocol:  unix.RTPROT_DHCP,
	}
	if lc.GatewayOnLink {
		r.Flags = int(netlink.FLAG_ONLINK)
	}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("default route via %v: %w", lc.Gateway, err)
	}
	return nil
}

// apply puts the lease into effect with cfg's hooks (cfg has defaults).
func apply(cfg Config, r *Result) error {
	if err := cfg.ConfigureLink(r.Interface, r.link); err != nil {
		return fmt.Errorf("%s: cannot configure %v: %w", r.Interface, &r.IP, err)
	}
	if len(r.DNS) > 0 || len(r.Search) > 0 {
		if err := cfg.WriteResolvConf(resolvConf(r.DNS, r.Search)); err != nil {
			cfg.Log("%s: cannot write resolv.conf: %v", r.Interface, err)
		}
	}
	if r.Hostname != "" {
		if err := cfg.SetHostname(r.Hostname); err != nil {
			cfg.Log("%s: cannot set the host name %q: %v", r.Interface, r.Hostname, err)
		}
	}
	return nil
}
