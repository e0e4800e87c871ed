//go:build linux

package netup

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzLease feeds the init's DHCP client (PID 1: a panic is a kernel
// panic) an OFFER and an ACK as they come off the wire: choosing among
// offers, describing them and building the lease never panic, and what
// comes out holds: a chosen address offer is an OFFER with an address,
// option 224 and the host name carry no trailing NUL, the lease's address
// is the ACK's yiaddr with a usable mask, the default route is not the
// address itself.
func FuzzLease(f *testing.F) {
	srv := net.IPv4(192, 0, 2, 1).To4()
	hw := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	reply := func(mt dhcpv4.MessageType, yiaddr net.IP, mods ...dhcpv4.Modifier) []byte {
		p, err := dhcpv4.New(append([]dhcpv4.Modifier{
			dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(mt),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(srv)), dhcpv4.WithYourIP(yiaddr),
		}, mods...)...)
		if err != nil {
			f.Fatal(err)
		}
		p.OpCode = dhcpv4.OpcodeBootReply
		return p.ToBytes()
	}
	addr := net.IPv4(192, 0, 2, 100)
	full := []dhcpv4.Modifier{
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithRouter(srv), dhcpv4.WithDNS(srv),
		dhcpv4.WithOption(dhcpv4.OptHostName("pi-1\x00")), dhcpv4.WithOption(dhcpv4.OptDomainName("example.test")),
		dhcpv4.WithGeneric(Option224, []byte("http://192.0.2.1/boot.ipxe\x00")),
		dhcpv4.WithOption(dhcpv4.OptBootFileName("boot.ipxe")), dhcpv4.WithLeaseTime(3600),
	}
	f.Add(reply(dhcpv4.MessageTypeOffer, addr, full...), reply(dhcpv4.MessageTypeAck, addr, full...))
	f.Add(reply(dhcpv4.MessageTypeOffer, net.IPv4zero, dhcpv4.WithGeneric(Option224, []byte("shell"))),
		reply(dhcpv4.MessageTypeAck, addr, dhcpv4.WithNetmask(net.CIDRMask(32, 32)), dhcpv4.WithRouter(net.IPv4(10, 0, 0, 1))))
	f.Add(reply(dhcpv4.MessageTypeNak, net.IPv4zero), reply(dhcpv4.MessageTypeAck, net.IPv4zero))
	f.Add(reply(dhcpv4.MessageTypeOffer, addr, dhcpv4.WithGeneric(dhcpv4.OptionSubnetMask, []byte{0, 0, 0, 0})),
		reply(dhcpv4.MessageTypeAck, addr, dhcpv4.WithGeneric(dhcpv4.OptionSubnetMask, []byte{255, 0, 255})))
	f.Fuzz(func(t *testing.T, offerBytes, ackBytes []byte) {
		offer, err := dhcpv4.FromBytes(offerBytes)
		if err != nil {
			offer = nil
		}
		ack, err := dhcpv4.FromBytes(ackBytes)
		if err != nil {
			return
		}
		var offers []*dhcpv4.DHCPv4
		if offer != nil {
			offers = append(offers, offer, nil)
			_ = describeOffer(offer)
		}
		_ = describeOffer(ack)
		chosen, opt224, _, err := chooseOffers(append(offers, ack))
		if err == nil {
			if chosen == nil || chosen.MessageType() != dhcpv4.MessageTypeOffer || !isAddressOffer(chosen) {
				t.Fatalf("chose %v", chosen)
			}
		} else if chosen != nil || opt224 != "" {
			t.Fatalf("chose %v and option 224 %q with %v", chosen, opt224, err)
		}
		if strings.HasSuffix(opt224, "\x00") {
			t.Fatalf("option 224 %q", opt224)
		}
		r, err := resultFrom("eth0", hw, ack, opt224, srv, offers)
		if err != nil {
			if r != nil {
				t.Fatalf("a result with %v", err)
			}
			return
		}
		if !r.IP.IP.Equal(ack.YourIPAddr) || r.IP.IP.To4() == nil {
			t.Fatalf("leased %v from yiaddr %v", r.IP.IP, ack.YourIPAddr)
		}
		if ones, bits := r.IP.Mask.Size(); bits != 32 || ones == 0 {
			t.Fatalf("mask %v", net.IP(r.IP.Mask))
		}
		if g := r.link.Gateway; g != nil && (g.Equal(r.IP.IP) || g.IsUnspecified()) {
			t.Fatalf("default route via %v for %v", g, r.IP.IP)
		}
		if r.link.GatewayOnLink && r.link.Gateway != nil && r.IP.Contains(r.link.Gateway) {
			t.Fatalf("gateway %v marked on-link but inside %v", r.link.Gateway, &r.IP)
		}
		for _, s := range []string{r.Hostname, r.Option224, r.BootFile, r.Domain} {
			if strings.HasSuffix(s, "\x00") {
				t.Fatalf("trailing NUL in %q", s)
			}
		}
		rc := resolvConf(r.DNS, r.Search)
		if !bytes.HasPrefix(rc, []byte("# written by ramboot init from DHCP\n")) || !bytes.HasSuffix(rc, []byte("\n")) {
			t.Fatalf("resolv.conf:\n%s", rc)
		}
	})
}
