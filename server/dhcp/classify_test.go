package dhcp

import (
	"encoding/hex"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// piDiscover is a Pi-4-shaped DISCOVER as notes/rpi-netboot.md describes it.
func piDiscover(t *testing.T) *dhcpv4.DHCPv4 {
	mac, _ := net.ParseMAC("dc:a6:32:01:36:c2")
	d, err := dhcpv4.NewDiscovery(mac,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, mustHex(t, "0052506934003111c0320136c29ffefdef")),
		dhcpv4.WithRequestedOptions(codes(1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135)...),
	)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPiProxyOfferMatchesDnsmasq compares with the reply dnsmasq 2.90 sends
// for --pxe-service=0,"Raspberry Pi Boot" (captured in notes/rpi-netboot.md).
func TestPiProxyOfferMatchesDnsmasq(t *testing.T) {
	req := piDiscover(t)
	resp, err := PiProxyOffer(req, net.IPv4(192, 0, 2, 10), "Raspberry Pi Boot")
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint8]string{
		43: "0601030a0400505845091400001152617370626572727920506920426f6f74ff",
		53: "02",
		54: "c000020a",
		60: "505845436c69656e74",
		97: "0052506934003111c0320136c29ffefdef",
	}
	got := map[uint8]string{}
	for code, v := range resp.Options {
		got[code] = hex.EncodeToString(v)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("options differ from dnsmasq's (-want +got):\n%s", diff)
	}
	if !resp.YourIPAddr.Equal(net.IPv4zero) || !resp.ServerIPAddr.Equal(net.IPv4zero) {
		t.Fatalf("yiaddr %v siaddr %v, want 0.0.0.0", resp.YourIPAddr, resp.ServerIPAddr)
	}
	if resp.TransactionID != req.TransactionID || resp.ClientHWAddr.String() != "dc:a6:32:01:36:c2" {
		t.Fatal("reply does not match the request's xid/chaddr")
	}
	// Round trip through the wire format.
	if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
		t.Fatal(err)
	}
}

func TestClassify(t *testing.T) {
	pi := piDiscover(t)
	pc, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3},
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}))
	piNo97, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0xb8, 0x27, 0xeb, 1, 2, 3},
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")))
	init, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0xdc, 0xa6, 0x32, 1, 2, 3},
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(RambootVendorClass)))
	ipxe, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 1, 2, 4},
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithUserClass("iPXE", false))
	laptop, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 9, 9, 9})
	init2, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 1, 2, 5},
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:ramboot")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 11}))
	for _, tc := range []struct {
		name string
		req  *dhcpv4.DHCPv4
		kind Kind
	}{
		{"pi4 by option 97", pi, PiBootROM},
		{"bios pc, same option 93 as a pi", pc, PCFirmware},
		{"pi 3 by MAC", piNo97, PiBootROM},
		{"ramboot init on a pi", init, RambootInit},
		{"ipxe", ipxe, IPXE},
		{"a laptop", laptop, Other},
		{"ramboot init as PXEClient:ramboot", init2, RambootInit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.req); got.Kind != tc.kind {
				t.Fatalf("kind %v, want %v", got.Kind, tc.kind)
			}
		})
	}
	c := Classify(pi)
	if c.Model != "RPi4" || c.Serial != "9ffefdef" {
		t.Fatalf("model %q serial %q", c.Model, c.Serial)
	}
}

func codes(cs ...uint8) []dhcpv4.OptionCode {
	var out []dhcpv4.OptionCode
	for _, c := range cs {
		out = append(out, dhcpv4.GenericOptionCode(c))
	}
	return out
}
