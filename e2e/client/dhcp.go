package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/internal/netnstest"
)

// The Raspberry Pi 4 EEPROM bootloader, as notes/rpi-netboot.md
// documents it, and dnsmasq 2.90's proxy reply to it, captured there.
const (
	PiMAC    = "dc:a6:32:01:36:c2"
	PiSerial = "9ffefdef"
	// PiHTTPAgent is the User-Agent of a Pi 4 bootloader's HTTP boot
	// (rpi-eeprom#433's log).
	PiHTTPAgent = "rpiboot/1.0 (c03115; version:507b2360)"
	PiVendor    = "PXEClient:Arch:00000:UNDI:002001"
	PiOpt97     = "0052506934003111c0320136c29ffefdef"
	// dnsmasq --dhcp-range=<net>,proxy --pxe-service=0,"Raspberry Pi Boot"
	DnsmasqPiOpt43 = "0601030a0400505845091400001152617370626572727920506920426f6f74ff"
	DnsmasqPiOpt60 = "505845436c69656e74"
)

// MustHex decodes hex constant s, failing t on an error.
func MustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PiDHCPMods are the options of the Pi 4's DISCOVER (and REQUEST): vendor
// class, client arch 0 (like an x86 BIOS), UNDI 2.1 (option 94), the
// machine id with "RPi4" and the serial (97), and its parameter request
// list: 1, 3, 43, 60, 66, 67, 128-135.
func PiDHCPMods(t testing.TB) []dhcpv4.Modifier {
	prl := []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionVendorSpecificInformation,
		dhcpv4.OptionClassIdentifier, dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName}
	for c := 128; c <= 135; c++ {
		prl = append(prl, dhcpv4.GenericOptionCode(c))
	}
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(PiVendor)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, MustHex(t, PiOpt97)),
		// Replace, not add to, the default list NewDiscovery puts in.
		func(d *dhcpv4.DHCPv4) { d.UpdateOption(dhcpv4.OptParameterRequestList(prl...)) },
	}
}

// DHCPPeer adds a lab peer with MAC mac and no address, as a machine at
// power-on, and opens a DHCP client on its interface (closed with the
// test).
func DHCPPeer(t testing.TB, l *lab.Lab, addr, mac string) (*lab.Peer, *nclient4.Client) {
	t.Helper()
	p := l.Peer(t, addr)
	p.SetMAC(t, mac)
	lab.Run(t, "ip", "-n", p.NS, "addr", "flush", "dev", p.Iface)
	var c *nclient4.Client
	if err := netnstest.Do(p.NS, func() (err error) {
		c, err = nclient4.New(p.Iface, nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(1))
		return err
	}); err != nil {
		t.Fatalf("DHCP client in %s: %v", p.NS, err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

// Exchange sends m from the Pi's namespace and collects every answer
// with its transaction id for the whole window.
func Exchange(t testing.TB, c *nclient4.Client, m *dhcpv4.DHCPv4, window time.Duration) []*dhcpv4.DHCPv4 {
	t.Helper()
	var got []*dhcpv4.DHCPv4
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	_, err := c.SendAndRead(ctx, nclient4.DefaultServers, m, func(p *dhcpv4.DHCPv4) bool {
		got = append(got, p)
		return false
	})
	if err == nil {
		t.Fatalf("Exchange: a matcher that never matches matched")
	}
	return got
}

// DHCPProbe sends one DHCPDISCOVER from peer p's interface (vendor class
// vendor, and option 93 when it starts with "PXEClient", as a PXE client
// and ramboot's netup do) and returns the first OFFER, within 10s.
func DHCPProbe(t testing.TB, p *lab.Peer, vendor string) *dhcpv4.DHCPv4 {
	t.Helper()
	offer, err := DHCPProbeErr(p, vendor, 10*time.Second)
	if err != nil {
		t.Fatalf("DHCP probe from %s (vendor class %q): %v", p.NS, vendor, err)
	}
	return offer
}

// DHCPProbeErr is DHCPProbe returning its error, within timeout.
func DHCPProbeErr(p *lab.Peer, vendor string, timeout time.Duration) (*dhcpv4.DHCPv4, error) {
	var c *nclient4.Client
	err := netnstest.Do(p.NS, func() (err error) {
		c, err = nclient4.New(p.Iface, nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
		return err
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	mods := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(224))}
	if vendor != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendor)))
	}
	if strings.HasPrefix(vendor, "PXEClient") {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_ARM64)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.DiscoverOffer(ctx, mods...)
}

// Opt224 is option 224 of p as a string (trailing NULs cut).
func Opt224(p *dhcpv4.DHCPv4) string {
	return string(bytes.TrimRight(p.Options.Get(dhcpv4.GenericOptionCode(224)), "\x00"))
}

// PiDiscover is a Pi 4 EEPROM bootloader's DISCOVER (see
// shared/notes/rpi-netboot.md): MAC dc:a6:32:xx:xx:xx, option 60
// PXEClient:Arch:00000:UNDI:002001, 93 = 0, 94, 55, and 97 = 00 "RPi4"
// revision, the MAC's low 4 bytes and the serial.
func PiDiscover(run, i int) (*dhcpv4.DHCPv4, error) {
	mac := net.HardwareAddr{0xdc, 0xa6, 0x32, byte(run), byte(i >> 8), byte(i)}
	serial := []byte{0x5e, byte(run), byte(i >> 8), byte(i)}
	guid := append([]byte{0}, "RPi4"...)
	guid = append(guid, 0x00, 0x31, 0x11, 0xc0) // board revision c03111
	guid = append(guid, mac[2:]...)
	guid = append(guid, serial...)
	params := []byte{1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135}
	return dhcpv4.New(
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{0x5b, byte(run), byte(i >> 8), byte(i)}),
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}),
		dhcpv4.WithGeneric(dhcpv4.OptionParameterRequestList, params),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid),
	)
}
