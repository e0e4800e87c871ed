package dhcp

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// pcDiscover is a PC firmware's DISCOVER as the PXE spec has it: option 60
// "PXEClient:Arch:xxxxx:UNDI:yyyzzz", 93 the architecture, 97 a GUID.
func pcDiscover(t *testing.T, mac string, arch uint16, vendor string, extra ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	guid := append([]byte{0}, bytes.Repeat([]byte{0xab}, 16)...)
	mods := append([]dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendor)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(arch >> 8), byte(arch)}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid),
		dhcpv4.WithOption(dhcpv4.OptParameterRequestList(codes(1, 3, 43, 60, 66, 67, 97)...)),
	}, extra...)
	d, err := dhcpv4.NewDiscovery(hw, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pcDecide answers like serve's decide: the iPXE binary by architecture,
// the script's URL for iPXE, ipxe.efi's URL for HTTP boot.
func pcDecide(c Client, ip net.IP) Decision {
	switch c.Kind {
	case IPXE:
		return Decision{BootFile: "http://" + ip.String() + ":8080/boot/x.ipxe"}
	case HTTPBoot:
		if c.Arch == ArchHTTPx64 {
			return Decision{BootFile: "http://" + ip.String() + ":8080/ipxe.efi"}
		}
	case PCFirmware:
		return Decision{BootFile: PXEBootFile(c.Arch)}
	}
	return Decision{}
}

func TestPCProxyDialects(t *testing.T) {
	s := &Server{Mode: Proxy, ServerIP: net.IPv4(192, 0, 2, 1), Decide: pcDecide}
	for _, tc := range []struct {
		name      string
		arch      uint16
		vendor    string
		file      string // "" = no answer
		class     string
		bypass    bool // option 43 with discovery control 8
		classKind Kind
	}{
		{"bios", ArchBIOS, "PXEClient:Arch:00000:UNDI:002001", "undionly.kpxe", "PXEClient", true, PCFirmware},
		{"uefi-bc", ArchEFIBC, "PXEClient:Arch:00007:UNDI:003016", "snponly.efi", "PXEClient", false, PCFirmware},
		{"uefi-x64", ArchEFIx64, "PXEClient:Arch:00009:UNDI:003016", "snponly.efi", "PXEClient", false, PCFirmware},
		{"uefi-http", ArchHTTPx64, "HTTPClient:Arch:00016:UNDI:003001", "http://192.0.2.1:8080/ipxe.efi", "HTTPClient", false, HTTPBoot},
		{"uefi-ia32", ArchEFIIA32, "PXEClient:Arch:00006:UNDI:003016", "", "", false, PCFirmware},
		{"uefi-arm64-http", ArchHTTPARM64, "HTTPClient:Arch:00019:UNDI:003001", "", "", false, HTTPBoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, ev := s.Handle(pcDiscover(t, "52:54:00:00:00:01", tc.arch, tc.vendor))
			if ev.Client.Kind != tc.classKind {
				t.Errorf("classified as %v, want %v", ev.Client.Kind, tc.classKind)
			}
			if tc.file == "" {
				if resp != nil || ev.Type != "ignored" || ev.Detail == "" {
					t.Fatalf("want a silent, explained ignore; got %v, %+v", resp, ev)
				}
				return
			}
			if resp == nil {
				t.Fatalf("no answer: %+v", ev)
			}
			if resp.MessageType() != dhcpv4.MessageTypeOffer || !resp.YourIPAddr.IsUnspecified() {
				t.Errorf("want an address-less proxy OFFER, got %v yiaddr %v", resp.MessageType(), resp.YourIPAddr)
			}
			if resp.BootFileName != tc.file || !resp.ServerIPAddr.Equal(s.ServerIP) || resp.ServerHostName != "192.0.2.1" {
				t.Errorf("file %q siaddr %v sname %q; want %q from 192.0.2.1", resp.BootFileName, resp.ServerIPAddr, resp.ServerHostName, tc.file)
			}
			if got := resp.ClassIdentifier(); got != tc.class {
				t.Errorf("option 60 = %q, want %q", got, tc.class)
			}
			if g := resp.Options.Get(dhcpv4.OptionClientMachineIdentifier); len(g) != 17 {
				t.Errorf("option 97 not echoed: %x", g)
			}
			o43 := resp.Options.Get(dhcpv4.OptionVendorSpecificInformation)
			if tc.bypass != bytes.Equal(o43, []byte{6, 1, 8, 255}) {
				t.Errorf("option 43 = %x; discovery bypass wanted: %v", o43, tc.bypass)
			}
		})
	}
}

func TestPCBootServer(t *testing.T) {
	s := &Server{Mode: Proxy, ServerIP: net.IPv4(192, 0, 2, 1), Decide: pcDecide}
	req := pcDiscover(t, "52:54:00:00:00:02", ArchEFIBC, "PXEClient:Arch:00007:UNDI:003016",
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest))
	req.ClientIPAddr = net.IPv4(192, 0, 2, 120)
	resp, ev := s.HandleBootServer(req)
	if resp == nil || resp.MessageType() != dhcpv4.MessageTypeAck || resp.BootFileName != "snponly.efi" {
		t.Fatalf("boot server answer to UEFI: %v %+v", resp, ev)
	}
	if !strings.HasPrefix(ev.Detail, "boot server:") {
		t.Errorf("event detail %q", ev.Detail)
	}
	// iPXE's ProxyDHCP request gets its script.
	ipxe := pcDiscover(t, "52:54:00:00:00:02", ArchEFIBC, "PXEClient:Arch:00007:UNDI:003010",
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithUserClass("iPXE", false))
	if resp, ev := s.HandleBootServer(ipxe); resp == nil || resp.BootFileName != "http://192.0.2.1:8080/boot/x.ipxe" {
		t.Fatalf("boot server answer to iPXE: %v %+v", resp, ev)
	}
	// Only PC firmware and iPXE are answered on 4011; a DISCOVER there is
	// not a boot server request.
	if resp, _ := s.HandleBootServer(initDiscover(t, "dc:a6:32:00:00:01")); resp != nil {
		t.Error("boot server answered ramboot's init")
	}
	if resp, _ := s.HandleBootServer(pcDiscover(t, "52:54:00:00:00:02", ArchEFIBC, "PXEClient:Arch:00007:UNDI:003016")); resp != nil {
		t.Error("boot server answered a DISCOVER")
	}
}

func TestPCFullMode(t *testing.T) {
	s := fullServer(t, "")
	s.Decide = pcDecide
	for _, tc := range []struct {
		arch   uint16
		vendor string
		user   string
		file   string
	}{
		{ArchBIOS, "PXEClient:Arch:00000:UNDI:002001", "", "undionly.kpxe"},
		{ArchEFIBC, "PXEClient:Arch:00007:UNDI:003016", "", "snponly.efi"},
		{ArchEFIBC, "PXEClient:Arch:00007:UNDI:003010", "iPXE", "http://192.0.2.1:8080/boot/x.ipxe"},
	} {
		var extra []dhcpv4.Modifier
		if tc.user != "" {
			extra = append(extra, dhcpv4.WithUserClass(tc.user, false))
		}
		off, ev := s.Handle(pcDiscover(t, "52:54:00:00:00:03", tc.arch, tc.vendor, extra...))
		if off == nil || off.YourIPAddr.IsUnspecified() {
			t.Fatalf("arch %d %s: no address offered: %+v", tc.arch, tc.user, ev)
		}
		if off.BootFileName != tc.file {
			t.Errorf("arch %d %s: file %q, want %q", tc.arch, tc.user, off.BootFileName, tc.file)
		}
		if got := string(off.Options.Get(dhcpv4.OptionBootfileName)); got != tc.file {
			t.Errorf("arch %d %s: option 67 %q (asked for), want %q", tc.arch, tc.user, got, tc.file)
		}
		// A PXE client's REQUEST carries options 60, 93 and 97 again.
		req := pcDiscover(t, "52:54:00:00:00:03", tc.arch, tc.vendor, append(extra,
			dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(off.ServerIdentifier())),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(off.YourIPAddr)))...)
		ack, ev := s.Handle(req)
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(off.YourIPAddr) || ack.BootFileName != tc.file {
			t.Fatalf("arch %d %s: ack %v %+v", tc.arch, tc.user, ack, ev)
		}
	}
}

func TestPCIsNotAPi(t *testing.T) {
	// Option 93 = 0 for both; a BIOS PC has no RPi4/RPi5 option 97 and no
	// Pi OUI. A Pi 4 with the same option 60 is a Pi.
	pc := Classify(pcDiscover(t, "52:54:00:00:00:04", ArchBIOS, "PXEClient:Arch:00000:UNDI:002001"))
	if pc.Kind != PCFirmware {
		t.Errorf("BIOS PC classified as %v", pc.Kind)
	}
	pi := Classify(pcDiscover(t, "dc:a6:32:00:00:04", ArchBIOS, "PXEClient:Arch:00000:UNDI:002001"))
	if pi.Kind != PiBootROM {
		t.Errorf("Pi OUI classified as %v", pi.Kind)
	}
	for arch, x86 := range map[uint16]bool{ArchBIOS: true, ArchEFIBC: true, ArchEFIx64: true, ArchHTTPx64: true, ArchEFIARM64: false, ArchHTTPARM64: false} {
		if IsX86(arch) != x86 {
			t.Errorf("IsX86(%d) = %v", arch, !x86)
		}
	}
}
