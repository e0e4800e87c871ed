package dhcp

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

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

// TestPi3BootLease: the lease a Pi 3B gets at the OFFER is a short boot
// lease, so a flood of made-up Pi 3 MACs holds the range for BootLease,
// not for a whole lease time: past it, another client gets an address. A
// Pi 3 whose Linux already holds a full lease keeps it when its ROM asks
// again after a reboot.
func TestPi3BootLease(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f := fullServer(t, "")
	f.Pool.Now = func() time.Time { return now }
	f.Pool.BootLease = 5 * time.Minute
	for i, mac := range []string{"b8:27:eb:00:00:01", "b8:27:eb:00:00:02", "b8:27:eb:00:00:03"} {
		off, ev := f.Handle(pi3Discover(t, mac))
		if off == nil {
			t.Fatalf("Pi 3 %d: no offer: %+v", i, ev)
		}
		if got := off.IPAddressLeaseTime(0); got != 5*time.Minute {
			t.Errorf("Pi 3 %d: option 51 says %v, want the 5m0s boot lease", i, got)
		}
		if !strings.Contains(ev.Detail, "lease committed at offer until 2026-11-30T12:05:00Z") {
			t.Errorf("Pi 3 %d: event detail %q", i, ev.Detail)
		}
	}
	// The range (three addresses) is the flood's: nobody else gets one.
	if off, ev := f.Handle(initDiscover(t, "dc:a6:32:00:00:05")); off != nil || ev.Type != "no-address" {
		t.Fatalf("a client was offered an address of a range the Pi 3 leases hold: %v %+v", off, ev)
	}
	now = now.Add(5*time.Minute + time.Second)
	ip := doora(t, f, "dc:a6:32:00:00:05")
	if ip == nil {
		t.Fatal("no address after the boot leases ended")
	}

	// A Pi 3 with a full lease (its Linux REQUESTed one) reboots: its
	// ROM's DISCOVER keeps the full lease.
	g := fullServer(t, "")
	g.Pool.Now = func() time.Time { return now }
	off, _ := g.Handle(pi3Discover(t, "b8:27:eb:00:00:09"))
	req := pi3Discover(t, "b8:27:eb:00:00:09")
	req.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	req.UpdateOption(dhcpv4.OptServerIdentifier(g.ServerIP))
	req.UpdateOption(dhcpv4.OptRequestedIPAddress(off.YourIPAddr))
	if ack, ev := g.Handle(req); ack == nil || ack.IPAddressLeaseTime(0) != DefaultLeaseTime {
		t.Fatalf("the REQUEST after the boot lease: %v %+v, want an ACK for %v", ack, ev, DefaultLeaseTime)
	}
	now = now.Add(time.Hour)
	again, _ := g.Handle(pi3Discover(t, "b8:27:eb:00:00:09"))
	if again == nil || !again.YourIPAddr.Equal(off.YourIPAddr) || again.IPAddressLeaseTime(0) != 11*time.Hour {
		t.Fatalf("the rebooted Pi 3's offer: %v, want %s for the 11h left of its lease", again, off.YourIPAddr)
	}
	if l := g.Pool.Leases(); len(l) != 1 || !l[0].Expires.Equal(now.Add(11*time.Hour)) {
		t.Errorf("leases after the reboot: %+v, want one ending %s", l, now.Add(11*time.Hour))
	}
}
