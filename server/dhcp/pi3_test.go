package dhcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func pi3Discover(t *testing.T, mac string) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	d, err := dhcpv4.NewDiscovery(hw,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}),
		dhcpv4.WithOption(dhcpv4.OptParameterRequestList(codes(1, 3, 43, 60, 66, 67)...)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPi3Dialect(t *testing.T) {
	c := Classify(pi3Discover(t, "b8:27:eb:01:02:03"))
	if c.Kind != PiBootROM || c.Model != "RPi3" {
		t.Fatalf("Pi 3 ROM classified as %v %q", c.Kind, c.Model)
	}
	// Proxy: the menu with the three trailing spaces, to a Pi 3 only.
	s := &Server{Mode: Proxy, ServerIP: net.IPv4(192, 0, 2, 1), Menu: "Raspberry Pi Boot"}
	resp, _ := s.Handle(pi3Discover(t, "b8:27:eb:01:02:03"))
	if got := resp.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, PiMenu("Raspberry Pi Boot   ")) {
		t.Errorf("Pi 3 menu %q", got)
	}
	resp, _ = s.Handle(piDiscover(t))
	if got := resp.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, PiMenu("Raspberry Pi Boot")) {
		t.Errorf("Pi 4 menu %q", got)
	}
	// A configured menu text is the operator's: sent as is.
	s.Menu = "Rack 7"
	resp, _ = s.Handle(pi3Discover(t, "b8:27:eb:01:02:03"))
	if got := resp.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, PiMenu("Rack 7")) {
		t.Errorf("Pi 3 with a configured menu got %q", got)
	}

	// Full mode: the lease is the Pi's at the OFFER (the 3B sends no
	// REQUEST); a 3B+, which does send one, gets the same address ACKed.
	f := fullServer(t, "")
	off, ev := f.Handle(pi3Discover(t, "b8:27:eb:01:02:03"))
	if off == nil || ev.Type != "offer" {
		t.Fatalf("full mode Pi 3: %+v", ev)
	}
	if l := f.Pool.Leases(); len(l) != 1 || l[0].MAC != "b8:27:eb:01:02:03" || l[0].IP != off.YourIPAddr.String() {
		t.Fatalf("after the Pi 3's DISCOVER the leases are %+v, want its offered address", l)
	}
	other, _ := f.Handle(initDiscover(t, "dc:a6:32:00:00:05"))
	if other == nil || other.YourIPAddr.Equal(off.YourIPAddr) {
		t.Fatalf("another client was offered the Pi 3's address: %v", other)
	}
	req := pi3Discover(t, "b8:27:eb:01:02:03")
	req.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	req.UpdateOption(dhcpv4.OptServerIdentifier(f.ServerIP))
	req.UpdateOption(dhcpv4.OptRequestedIPAddress(off.YourIPAddr))
	ack, ev := f.Handle(req)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(off.YourIPAddr) {
		t.Fatalf("a 3B+'s REQUEST after the committed offer: %v %+v", ack, ev)
	}
}
