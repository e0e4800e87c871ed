package dhcp

import (
	"bytes"
	"encoding/hex"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// fuzzSeeds are requests of each kind of client the server tells apart,
// as the bytes the serving loop reads off the wire.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			f.Fatal(err)
		}
		return m
	}
	machineID, _ := hex.DecodeString("0052506934003111c0320136c29ffefdef")
	server := net.IPv4(192, 0, 2, 1)
	var out [][]byte
	add := func(m *dhcpv4.DHCPv4, err error) {
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, m.ToBytes())
	}
	// A Pi 4's EEPROM bootloader.
	add(dhcpv4.NewDiscovery(mac("dc:a6:32:01:36:c2"),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, machineID),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionClassIdentifier)))
	// A Pi 3's boot ROM: no machine id, the Pi 3 OUI.
	add(dhcpv4.NewDiscovery(mac("b8:27:eb:01:02:03"),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))))
	// ramboot's init asking for option 224.
	add(dhcpv4.NewDiscovery(mac("dc:a6:32:01:02:03"),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:"+RambootVendorClass)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionHostName, dhcpv4.GenericOptionCode(224))))
	// iPXE, by its user class.
	add(dhcpv4.NewDiscovery(mac("52:54:00:12:34:57"),
		dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionBootfileName)))
	// PC firmware (x86-64 UEFI) and a UEFI HTTP boot client.
	add(dhcpv4.NewDiscovery(mac("52:54:00:12:34:58"),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7})))
	add(dhcpv4.NewDiscovery(mac("52:54:00:12:34:59"),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 16})))
	// A REQUEST for an address of the range, naming this server; a
	// DECLINE, a RELEASE and an INFORM.
	add(dhcpv4.NewDiscovery(mac("dc:a6:32:01:02:04"),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 0, 2, 100))),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server))))
	add(dhcpv4.NewDiscovery(mac("dc:a6:32:01:02:05"),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 0, 2, 101))),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server))))
	add(dhcpv4.NewDiscovery(mac("dc:a6:32:01:02:06"),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease),
		dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 102))))
	add(dhcpv4.NewDiscovery(mac("dc:a6:32:01:02:07"),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeInform),
		dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 50))))
	// Relayed: from another subnet, and from this one.
	add(dhcpv4.NewDiscovery(mac("dc:a6:32:01:02:08"), dhcpv4.WithGatewayIP(net.IPv4(198, 51, 100, 1))))
	add(dhcpv4.NewDiscovery(mac("dc:a6:32:01:02:09"), dhcpv4.WithGatewayIP(net.IPv4(192, 0, 2, 254))))
	return out
}

// FuzzClassify: any packet that parses is classified without a panic,
// consistently: a model is one the server knows, a Pi 4/5's serial is 8
// hex digits, a Pi boot ROM has a machine id or a Pi MAC, and the
// classification survives the packet being re-encoded.
func FuzzClassify(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		c := Classify(req)
		_ = c.Kind.String() // a kind in range
		switch c.Model {
		case "":
		case "RPi3":
			if c.Kind != PiBootROM || !IsPiMAC(c.MAC) {
				t.Fatalf("RPi3 model for %+v", c)
			}
		case "RPi4", "RPi5":
			if _, err := hex.DecodeString(c.Serial); err != nil || len(c.Serial) != 8 {
				t.Fatalf("serial %q of a %s", c.Serial, c.Model)
			}
		default:
			t.Fatalf("unknown model %q", c.Model)
		}
		if c.Kind == PiBootROM && c.Model == "" && !IsPiMAC(c.MAC) {
			t.Fatalf("a Pi boot ROM without a machine id or a Pi MAC: %+v", c)
		}
		again, err := dhcpv4.FromBytes(req.ToBytes())
		if err != nil {
			t.Fatalf("a parsed request does not re-encode to a packet: %v", err)
		}
		if c2 := Classify(again); c2.Kind != c.Kind || c2.Model != c.Model || c2.Serial != c.Serial || c2.Arch != c.Arch {
			t.Fatalf("classified %+v, re-encoded %+v", c, c2)
		}
	})
}

// FuzzDecide drives the whole decision (classify, decide, reply) for a
// packet off the wire in each mode: never a panic, and every reply is a
// BOOTREPLY to the same transaction and client that encodes to a valid
// packet; proxy mode and the boot server never hand out an address; full
// mode offers only the pool's or the node's own address; an ignored
// client gets nothing.
func FuzzDecide(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	static := net.IPv4(192, 0, 2, 105).To4()
	decide := func(c Client, _ net.IP) Decision {
		d := Decision{Hostname: "node-1", Option224: "shell", BootFile: "http://192.0.2.1:8080/boot.ipxe"}
		if n := len(c.MAC); n > 0 && c.MAC[n-1] == 0xff {
			d.Ignore = true
		} else if n > 0 && c.MAC[n-1]&1 == 1 {
			d.Address = static
		}
		return d
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		d := decide(Classify(req), nil)
		check := func(mode string, resp *dhcpv4.DHCPv4, ev Event) {
			t.Helper()
			if ev.Type == "" {
				t.Fatalf("%s: an event without a type: %+v", mode, ev)
			}
			if resp == nil {
				return
			}
			if d.Ignore {
				t.Fatalf("%s: answered a client the decider ignores: %v", mode, resp)
			}
			if resp.OpCode != dhcpv4.OpcodeBootReply || resp.TransactionID != req.TransactionID || !bytes.Equal(resp.ClientHWAddr, req.ClientHWAddr) {
				t.Fatalf("%s: reply %v to request %v", mode, resp, req)
			}
			back, err := dhcpv4.FromBytes(resp.ToBytes())
			if err != nil || back.MessageType() != resp.MessageType() {
				t.Fatalf("%s: the reply does not parse back: %v (%v)", mode, err, back)
			}
			a, ok := replyAddr(req, resp, nil).(*net.UDPAddr)
			if !ok || a.Port != 67 && a.Port != 68 {
				t.Fatalf("%s: reply to %v", mode, a)
			}
		}
		noAddress := func(mode string, resp *dhcpv4.DHCPv4) {
			t.Helper()
			if resp != nil && resp.YourIPAddr != nil && !resp.YourIPAddr.IsUnspecified() {
				t.Fatalf("%s offered %v", mode, resp.YourIPAddr)
			}
		}

		proxy := &Server{Mode: Proxy, ServerIP: net.IPv4(192, 0, 2, 1), Decide: decide}
		resp, ev := proxy.Handle(req)
		check("proxy", resp, ev)
		noAddress("proxy mode", resp)
		if resp != nil && resp.MessageType() != dhcpv4.MessageTypeOffer && resp.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("proxy mode sent a %v", resp.MessageType())
		}
		resp, ev = proxy.HandleBootServer(req)
		check("boot server", resp, ev)
		noAddress("the boot server", resp)

		pool, err := OpenPool(net.IPv4(192, 0, 2, 100), net.IPv4(192, 0, 2, 110), "")
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		full := &Server{Mode: Full, ServerIP: net.IPv4(192, 0, 2, 1), Pool: pool, Decide: decide}
		resp, ev = full.Handle(req)
		check("full", resp, ev)
		if resp == nil {
			return
		}
		switch mt := resp.MessageType(); mt {
		case dhcpv4.MessageTypeNak:
			noAddress("a NAK", resp)
		case dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck:
			ip := resp.YourIPAddr.To4()
			if ip == nil || ip.IsUnspecified() {
				if mt == dhcpv4.MessageTypeOffer {
					t.Fatalf("an OFFER without an address: %v", resp)
				}
				return // an ACK to an INFORM
			}
			if d.Address != nil && !ip.Equal(d.Address) {
				t.Fatalf("full mode gave %v to a node whose address is %v", ip, d.Address)
			}
			if d.Address == nil && (bytes.Compare(ip, pool.Start) < 0 || bytes.Compare(ip, pool.End) > 0) {
				t.Fatalf("full mode gave %v, outside the pool %v-%v", ip, pool.Start, pool.End)
			}
		default:
			t.Fatalf("full mode sent a %v", mt)
		}
	})
}
