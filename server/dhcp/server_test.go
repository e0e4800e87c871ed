package dhcp

import (
	"bytes"
	"net"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func initDiscover(t *testing.T, mac string, prl ...uint8) *dhcpv4.DHCPv4 {
	hw, _ := net.ParseMAC(mac)
	d, err := dhcpv4.NewDiscovery(hw, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(RambootVendorClass)),
		dhcpv4.WithOption(dhcpv4.OptParameterRequestList(codes(prl...)...)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestProxyAnswersOnlyBootClients(t *testing.T) {
	s := &Server{Mode: Proxy, ServerIP: net.IPv4(192, 0, 2, 1), Decide: func(c Client, ip net.IP) Decision {
		return Decision{Option224: "http://" + ip.String() + "/boot/" + c.MAC.String() + ".ipxe", Hostname: "pi-1"}
	}}
	resp, ev := s.Handle(initDiscover(t, "dc:a6:32:01:02:03", 224))
	if resp == nil || ev.Type != "offer" {
		t.Fatalf("init discover: %+v", ev)
	}
	if got := string(resp.Options.Get(dhcpv4.GenericOptionCode(224))); got != "http://192.0.2.1/boot/dc:a6:32:01:02:03.ipxe" {
		t.Fatalf("option 224 = %q", got)
	}
	if !resp.YourIPAddr.IsUnspecified() {
		t.Fatalf("proxy mode offered an address: %v", resp.YourIPAddr)
	}
	// A Pi's bootloader gets the menu.
	resp, ev = s.Handle(piDiscover(t))
	if resp == nil || resp.Options.Get(dhcpv4.OptionVendorSpecificInformation) == nil {
		t.Fatalf("pi discover: %+v", ev)
	}
	// iPXE gets its script's URL as the boot file, and no address.
	ipxeReq, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 1, 2, 4},
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithUserClass("iPXE", false))
	s.Decide = func(c Client, ip net.IP) Decision {
		if c.Kind == IPXE {
			return Decision{BootFile: "http://192.0.2.1:8080/boot/52-54-00-01-02-04.ipxe"}
		}
		return Decision{Option224: "shell"}
	}
	resp, ev = s.Handle(ipxeReq)
	if resp == nil || resp.BootFileName != "http://192.0.2.1:8080/boot/52-54-00-01-02-04.ipxe" || !resp.YourIPAddr.IsUnspecified() {
		t.Fatalf("ipxe: %+v %v", ev, resp)
	}
	// A laptop gets nothing.
	laptop, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 9, 9, 9})
	if resp, ev := s.Handle(laptop); resp != nil || ev.Type != "ignored" {
		t.Fatalf("laptop got %v (%+v)", resp, ev)
	}
	// A PC PXE ROM with option 93 = 0 (like a Pi) but no Pi signs: not a Pi.
	pc, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3},
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}))
	if resp, _ := s.Handle(pc); resp != nil && resp.Options.Get(dhcpv4.OptionVendorSpecificInformation) != nil {
		t.Fatal("a PC got the Raspberry Pi boot menu")
	}
}

func fullServer(t *testing.T, file string) *Server {
	p, err := OpenPool(net.IPv4(192, 0, 2, 100), net.IPv4(192, 0, 2, 102), file)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{Mode: Full, ServerIP: net.IPv4(192, 0, 2, 1), Pool: p, Router: net.IPv4(192, 0, 2, 1),
		Decide: func(c Client, ip net.IP) Decision {
			if c.MAC.String() == "dc:a6:32:00:00:09" {
				return Decision{Address: net.IPv4(192, 0, 2, 50), Hostname: "static-9", Option224: "shell"}
			}
			return Decision{Option224: "shell"}
		}}
}

func doora(t *testing.T, s *Server, mac string) net.IP {
	t.Helper()
	d := initDiscover(t, mac, 1, 3, 12, 224)
	off, ev := s.Handle(d)
	if off == nil {
		t.Fatalf("no offer for %s: %+v", mac, ev)
	}
	req, err := dhcpv4.NewRequestFromOffer(off)
	if err != nil {
		t.Fatal(err)
	}
	ack, ev := s.Handle(req)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ack for %s: %+v", mac, ev)
	}
	return ack.YourIPAddr
}

func TestFullModeLeasesSurviveRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "leases.json")
	s := fullServer(t, file)
	a := doora(t, s, "dc:a6:32:00:00:01")
	b := doora(t, s, "dc:a6:32:00:00:02")
	st := doora(t, s, "dc:a6:32:00:00:09")
	if a.Equal(b) || !st.Equal(net.IPv4(192, 0, 2, 50)) {
		t.Fatalf("addresses %v %v static %v", a, b, st)
	}
	// "kill -9": a new server from the same file, no shutdown.
	s2 := fullServer(t, file)
	if got := doora(t, s2, "dc:a6:32:00:00:01"); !got.Equal(a) {
		t.Fatalf("after restart node 1 got %v, had %v", got, a)
	}
	c := doora(t, s2, "dc:a6:32:00:00:03")
	if c.Equal(a) || c.Equal(b) {
		t.Fatalf("after restart a new node got a leased address %v", c)
	}
	// The pool (3 addresses) is now full.
	if resp, ev := s2.Handle(initDiscover(t, "dc:a6:32:00:00:04")); resp != nil || ev.Err == nil {
		t.Fatalf("full pool still offered: %+v", ev)
	}
}

func TestFullModeHonoursPRLAndNaks(t *testing.T) {
	s := fullServer(t, "")
	d := initDiscover(t, "dc:a6:32:00:00:01", 1, 224) // no router, no hostname asked
	off, _ := s.Handle(d)
	if off.Options.Get(dhcpv4.OptionRouter) != nil {
		t.Error("router sent though not requested")
	}
	if string(off.Options.Get(dhcpv4.GenericOptionCode(224))) != "shell" {
		t.Error("option 224 missing though requested")
	}
	// A REQUEST for someone else's address is refused.
	doora(t, s, "dc:a6:32:00:00:02")
	hw, _ := net.ParseMAC("dc:a6:32:00:00:05")
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 0, 2, 101))))
	req.ClientIPAddr = net.IPv4(192, 0, 2, 101) // as a renewing client
	nak, ev := s.Handle(req)
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak || !nak.YourIPAddr.IsUnspecified() {
		t.Fatalf("want NAK, got %+v", ev)
	}
	// RFC 2131 4.1: a NAK is broadcast, even to a client with a ciaddr.
	if a := replyAddr(req, nak, nil).(*net.UDPAddr); !a.IP.Equal(net.IPv4bcast) || a.Port != 68 {
		t.Fatalf("NAK sent to %v, want 255.255.255.255:68", a)
	}
	// A relay on this subnet: the reply goes back to giaddr; a NAK too,
	// with the broadcast bit set for the relay to broadcast it.
	relayed := initDiscover(t, "dc:a6:32:00:00:07", 1)
	relayed.GatewayIPAddr = net.IPv4(192, 0, 2, 254)
	off, ev = s.Handle(relayed)
	if off == nil {
		t.Fatalf("relay on the local subnet: %+v", ev)
	}
	if a := replyAddr(relayed, off, nil).(*net.UDPAddr); !a.IP.Equal(net.IPv4(192, 0, 2, 254)) || a.Port != 67 {
		t.Fatalf("relay reply to %v", a)
	}
	req.GatewayIPAddr = net.IPv4(192, 0, 2, 254)
	nak, _ = s.Handle(req)
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak || !nak.IsBroadcast() {
		t.Fatalf("relayed NAK %v", nak)
	}
	if a := replyAddr(req, nak, nil).(*net.UDPAddr); !a.IP.Equal(net.IPv4(192, 0, 2, 254)) || a.Port != 67 {
		t.Fatalf("relayed NAK to %v", a)
	}
}

// FuzzHandle feeds arbitrary packets to both modes: never a panic, and
// proxy mode never offers an address.
func FuzzHandle(f *testing.F) {
	t := &testing.T{}
	f.Add(piDiscover(t).ToBytes())
	f.Add(initDiscover(t, "dc:a6:32:01:02:03", 1, 3, 224).ToBytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		proxy := &Server{Mode: Proxy, ServerIP: net.IPv4(192, 0, 2, 1), Decide: func(Client, net.IP) Decision { return Decision{Option224: "shell"} }}
		resp, _ := proxy.Handle(req)
		if resp != nil && !resp.YourIPAddr.IsUnspecified() {
			t.Fatalf("proxy mode offered %v", resp.YourIPAddr)
		}
		p, _ := OpenPool(net.IPv4(192, 0, 2, 100), net.IPv4(192, 0, 2, 110), "")
		full := &Server{Mode: Full, ServerIP: net.IPv4(192, 0, 2, 1), Pool: p}
		fresp, _ := full.Handle(req)
		// The serving loop's encoder writes what the library would.
		for _, m := range []*dhcpv4.DHCPv4{req, resp, fresp} {
			if m == nil || len(m.ClientHWAddr) > 255 {
				continue
			}
			if got, want := appendPacket(nil, m), m.ToBytes(); !bytes.Equal(got, want) {
				t.Fatalf("appendPacket %x, ToBytes %x", got, want)
			}
			if msgType(m) != m.MessageType() {
				t.Fatalf("msgType %v, MessageType %v", msgType(m), m.MessageType())
			}
		}
	})
}

// BenchmarkProxyPiDiscover is the proxy path per Pi 4 DISCOVER, bytes in
// to bytes out (parse, classify, decide, reply, encode, the event), as the
// serving loop runs it (less the socket): e2e's BenchmarkProxyDHCP compares the whole
// process with dnsmasq; this is the part to profile
// (go test -run '^$' -bench ProxyPi -cpuprofile cpu.out ./server/dhcp).
func BenchmarkProxyPiDiscover(b *testing.B) {
	t := &testing.T{}
	raw := piDiscover(t).ToBytes()
	var logged int
	s := &Server{Mode: Proxy, ServerIP: net.IPv4(192, 0, 2, 1), Menu: "Raspberry Pi Boot",
		Decide: func(c Client, ip net.IP) Decision { return Decision{} },
		Log:    func(e Event) { logged++ }}
	out := make([]byte, 0, 1500)
	b.ReportAllocs()
	for b.Loop() {
		req, err := dhcpv4.FromBytes(raw)
		if err != nil {
			b.Fatal(err)
		}
		resp, ev, _ := s.handle(req)
		s.log(ev)
		if resp == nil {
			b.Fatalf("no reply: %+v", ev)
		}
		out = appendPacket(out[:0], resp)
	}
}
