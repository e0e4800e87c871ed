package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// full answers as the network's own DHCP server. A non-zero Commit means
// the reply grants a lease: it may be sent only once the pool has that
// change on disk (Pool.Durable).
func (s *Server) full(req *dhcpv4.DHCPv4, c Client, d Decision, ev Event) (*dhcpv4.DHCPv4, Event, Commit) {
	if s.Pool == nil {
		ev.Type, ev.Detail = "ignored", "full mode without a pool"
		return nil, ev, 0
	}
	if gi := req.GatewayIPAddr; gi != nil && !gi.IsUnspecified() && !s.localNet().Contains(gi) {
		return nil, s.refuseRelay(gi, ev), 0
	}
	mac := req.ClientHWAddr
	switch msgType(req) {
	case dhcpv4.MessageTypeDiscover:
		ip, err := s.Pool.Offer(mac, req.RequestedIPAddress(), d.Address)
		if err != nil {
			ev.Type, ev.Err = "no-address", err
			return nil, ev, 0
		}
		resp, err := s.reply(req, c, d, dhcpv4.MessageTypeOffer, ip)
		if err != nil {
			ev.Type, ev.Err = "error", err
			return nil, ev, 0
		}
		ev.Type, ev.Address = "offer", ip
		if resp.BootFileName != "" {
			ev.Detail = "boot file " + resp.BootFileName
		}
		var commit Commit
		if c.Model == "RPi3" {
			// The Pi 3B's ROM never sends a DHCPREQUEST: it takes the
			// offered address and goes on to TFTP. Commit the lease now,
			// or the address would be offered to the next client.
			// The lease is a short boot lease: the address has to last
			// through the firmware's TFTP only (its Linux asks for its
			// own), and a flood of made-up Pi 3 MACs then cannot hold
			// the range for a whole lease time.
			l, c, err := s.Pool.GrantBoot(mac, ip, d.Hostname, d.Address != nil)
			if err != nil {
				ev.Type, ev.Err = "no-address", err
				return nil, ev, 0
			}
			commit = c
			// Option 51 says what is left of it, in whole seconds
			// rounded up (Expires is kept to the second).
			if left := l.Expires.Sub(s.Pool.now()); left > 0 {
				resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime((left + time.Second - 1).Truncate(time.Second)))
			}
			ev.Detail = "lease committed at offer until " + l.Expires.Format(time.RFC3339) + " (the Pi 3 ROM sends no REQUEST)"
		}
		return resp, ev, commit
	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(s.ServerIP) {
			ev.Type, ev.Detail = "ignored", "client chose server "+sid.String()
			return nil, ev, 0
		}
		want := req.RequestedIPAddress()
		if want == nil || want.IsUnspecified() {
			want = req.ClientIPAddr
		}
		if want == nil || want.IsUnspecified() {
			resp, ev := s.nak(req, ev, "no address requested")
			return resp, ev, 0
		}
		if d.Address != nil && !d.Address.Equal(want) {
			resp, ev := s.nak(req, ev, "this node's address is "+d.Address.String())
			return resp, ev, 0
		}
		l, commit, err := s.Pool.Grant(mac, want, d.Hostname, d.Address != nil)
		if errors.Is(err, ErrBusy) {
			ev.Type, ev.Detail = "ignored", err.Error()+" (the client will ask again)"
			return nil, ev, 0
		}
		if err != nil {
			resp, ev := s.nak(req, ev, err.Error())
			return resp, ev, 0
		}
		resp, err := s.reply(req, c, d, dhcpv4.MessageTypeAck, net.ParseIP(l.IP).To4())
		if err != nil {
			ev.Type, ev.Err = "error", err
			return nil, ev, 0
		}
		ev.Type, ev.Address = "ack", want
		if resp.BootFileName != "" {
			ev.Detail = "boot file " + resp.BootFileName
		}
		return resp, ev, commit
	case dhcpv4.MessageTypeDecline:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(s.ServerIP) {
			ev.Type, ev.Detail = "ignored", "decline for server "+sid.String()
			return nil, ev, 0
		}
		ip := req.RequestedIPAddress()
		if ip == nil || ip.IsUnspecified() {
			ev.Type, ev.Detail = "ignored", "decline names no address"
			return nil, ev, 0
		}
		ev.Address = ip
		d, err := s.Pool.Decline(mac, ip)
		if err != nil {
			ev.Type, ev.Detail = "ignored", "decline: "+err.Error()
			return nil, ev, 0
		}
		ev.Type = "decline"
		ev.Detail = fmt.Sprintf("the client found %s in use by another host; address set aside for %s", ip, d.Hold)
		if d.FreedOwn != nil {
			ev.Detail += fmt.Sprintf("; %s, which this client declined before, is free again (one declined address per client)", d.FreedOwn)
		}
		if d.FreedOldest != nil {
			ev.Detail += fmt.Sprintf("; %s, declined by %s, is free again (the pool sets aside at most %d declined addresses)", d.FreedOldest, d.OldestMAC, d.Max)
		}
		if m := req.Message(); m != "" {
			ev.Detail += " (client says " + strconv.Quote(m) + ")"
		}
		return nil, ev, 0
	case dhcpv4.MessageTypeInform:
		resp, err := s.reply(req, c, d, dhcpv4.MessageTypeAck, nil)
		if err != nil {
			ev.Type, ev.Err = "error", err
			return nil, ev, 0
		}
		ev.Type = "ack"
		return resp, ev, 0
	}
	ev.Type = "ignored"
	return nil, ev, 0
}

// localNet is the served interface's network.
func (s *Server) localNet() *net.IPNet {
	mask := s.Subnet
	if mask == nil {
		mask = net.CIDRMask(24, 32)
	}
	return &net.IPNet{IP: s.ServerIP.Mask(mask), Mask: mask}
}

// refuseRelay answers nothing to a client behind a relay on another
// subnet: the pool's addresses are the local subnet's, wrong there. A
// request through a relay is logged as "no-address" once per relay a
// minute (with how many more came); the rest are "ignored" and held back
// from Log.
func (s *Server) refuseRelay(gi net.IP, ev Event) Event {
	relay, _ := netip.AddrFromSlice(gi)
	held, first := s.relays.Allow(relay.Unmap(), time.Now())
	ev.Type, ev.quiet = "ignored", !first
	if first {
		ev.Type = "no-address"
	}
	ev.Detail = fmt.Sprintf("relayed by %s: no address pool for that subnet (the pool %s-%s is %s's), not answering%s",
		gi, s.Pool.Start, s.Pool.End, s.localNet(), held)
	return ev
}

// nak refuses a REQUEST. RFC 2131 4.1 and 4.3.2: no address in it, and it
// is broadcast (replyAddr), or sent to the relay with the broadcast bit set
// so the relay broadcasts it.
func (s *Server) nak(req *dhcpv4.DHCPv4, ev Event, why string) (*dhcpv4.DHCPv4, Event) {
	resp := newReply(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.ServerIP)),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)))
	if gi := req.GatewayIPAddr; gi != nil && !gi.IsUnspecified() {
		resp.SetBroadcast()
	}
	ev.Type, ev.Detail = "nak", why
	return resp, ev
}

// reply builds an OFFER or ACK. Options the client did not ask for in its
// parameter request list are left out, except those every client needs
// (message type, server id, lease time, subnet mask).
func (s *Server) reply(req *dhcpv4.DHCPv4, c Client, d Decision, mt dhcpv4.MessageType, ip net.IP) (*dhcpv4.DHCPv4, error) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithServerIP(s.ServerIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.ServerIP)),
	}
	if ip != nil {
		lt := DefaultLeaseTime
		if s.Pool != nil {
			lt = s.Pool.leaseTime()
		}
		mods = append(mods, dhcpv4.WithYourIP(ip), dhcpv4.WithLeaseTime(uint32(lt/time.Second)))
	}
	mask := s.Subnet
	if mask == nil {
		mask = net.CIDRMask(24, 32)
	}
	mods = append(mods, dhcpv4.WithNetmask(mask))
	resp := newReply(req, mods...)
	asked := map[uint8]bool{}
	for _, o := range req.ParameterRequestList() {
		asked[o.Code()] = true
	}
	set := func(code uint8, val []byte) {
		if asked[code] && len(val) > 0 {
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(code), val))
		}
	}
	if s.Router != nil {
		set(3, s.Router.To4())
	}
	var dns []byte
	for _, n := range s.DNS {
		dns = append(dns, n.To4()...)
	}
	set(6, dns)
	set(12, []byte(d.Hostname))
	set(224, []byte(d.Option224))
	if c.Kind == PiBootROM {
		set(60, []byte("PXEClient"))
		set(43, PiMenu(s.piMenu(c)))
		set(66, []byte(s.ServerIP.String()))
		if g := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); g != nil {
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, g))
		}
	}
	if d.BootFile != "" && (c.Kind == PCFirmware || c.Kind == HTTPBoot || c.Kind == IPXE) {
		// The boot file goes in the header's file field, which every PXE
		// client reads; 66 and 67 only when asked for. iPXE needs no more.
		if c.Kind == IPXE {
			resp.BootFileName = d.BootFile
			resp.ServerHostName = s.ServerIP.String()
		} else {
			s.setBootFile(resp, req, c, d.BootFile)
		}
		if c.Kind == PCFirmware && c.Arch == ArchBIOS {
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryBypass))
		}
		set(66, []byte(s.ServerIP.String()))
		set(67, []byte(d.BootFile))
	}
	if gi := req.GatewayIPAddr; gi != nil && !gi.IsUnspecified() {
		resp.GatewayIPAddr = gi
	}
	return resp, nil
}
