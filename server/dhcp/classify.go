// Package dhcp holds the DHCP side of `ramboot serve`: it tells boot
// clients apart (a Pi's bootloader, ramboot's init, iPXE, PC firmware) and
// builds the replies each one needs. Protocol only: what a node gets is
// decided by the caller's inventory.
package dhcp

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Kind is the kind of boot client.
type Kind int

const (
	Other       Kind = iota
	PiBootROM        // a Raspberry Pi's EEPROM or ROM bootloader
	RambootInit      // ramboot's init asking for option 224
	IPXE             // iPXE, by its user class
	PCFirmware       // an x86 BIOS/UEFI PXE ROM
	HTTPBoot         // a UEFI HTTP boot client (vendor class HTTPClient)
)

func (k Kind) String() string {
	return [...]string{"other", "pi-bootloader", "ramboot-init", "ipxe", "pc-firmware", "uefi-http"}[k]
}

// RambootVendorClass marks ramboot's init in option 60: the init sends
// "PXEClient:ramboot" (a dnsmasq proxy answers only "PXEClient..."), older
// or custom inits may send "ramboot".
const RambootVendorClass = "ramboot"

// Pi3OUI is the MAC prefix of the Pi 3 and earlier (the Pi 4 and 5 use
// the others in PiOUIs).
const Pi3OUI = "b8:27:eb"

// Pi3Menu is the menu text the Pi 3B's boot ROM wants: "Raspberry Pi
// Boot" with three trailing spaces, a ROM bug the 3B+ fixed. The 3B+
// and the Pi 3B's bootcode.bin accept it too, so every Pi 3 gets it.
const Pi3Menu = "Raspberry Pi Boot   "

// PiOUIs are the MAC prefixes of Raspberry Pi boards seen in the field.
var PiOUIs = []string{"b8:27:eb", "dc:a6:32", "e4:5f:01", "28:cd:c1", "d8:3a:dd", "2c:cf:67"}

// Client is what a request says about its sender.
type Client struct {
	Kind   Kind
	MAC    net.HardwareAddr
	Model  string // "RPi4", "RPi5" from option 97; "RPi3" for a Pi 3 boot ROM; or ""
	Serial string // the Pi's serial in lower-case hex, from option 97
	Arch   uint16 // option 93, if present
	Vendor string // option 60
	User   string // option 77 (first class)
}

// IsPiMAC reports whether mac has a Raspberry Pi OUI.
func IsPiMAC(mac net.HardwareAddr) bool {
	if len(mac) < 3 {
		return false
	}
	p := strings.ToLower(mac[:3].String())
	for _, o := range PiOUIs {
		if p == o {
			return true
		}
	}
	return false
}

// Classify tells what kind of client sent req. A Pi 4 reports option 93 =
// 0 like an x86 BIOS, so option 97, the vendor class and the MAC decide.
func Classify(req *dhcpv4.DHCPv4) Client {
	c := Client{MAC: req.ClientHWAddr, Vendor: req.ClassIdentifier()}
	if uc := req.UserClass(); len(uc) > 0 {
		c.User = uc[0]
	} else if raw := req.Options.Get(dhcpv4.OptionUserClassInformation); len(raw) > 0 {
		c.User = string(raw)
	}
	if a := req.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(a) >= 2 {
		c.Arch = uint16(a[0])<<8 | uint16(a[1])
	}
	if g := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); len(g) == 17 && g[0] == 0 {
		if m := string(g[1:5]); m == "RPi4" || m == "RPi5" {
			c.Model = m
			c.Serial = hex.EncodeToString(g[13:17])
		}
	}
	switch {
	case c.Vendor == RambootVendorClass || strings.HasPrefix(c.Vendor, RambootVendorClass+":") || strings.HasSuffix(c.Vendor, ":"+RambootVendorClass):
		c.Kind = RambootInit
	case c.User == "iPXE":
		c.Kind = IPXE
	case c.Model != "":
		c.Kind = PiBootROM
	case strings.HasPrefix(c.Vendor, "PXEClient") && IsPiMAC(c.MAC):
		c.Kind = PiBootROM
		if strings.HasPrefix(strings.ToLower(c.MAC.String()), Pi3OUI) {
			// The Pi 3's ROM sends no RPi4/RPi5 machine id; the Pi 4 and
			// later never had this prefix.
			c.Model = "RPi3"
		}
	case strings.HasPrefix(c.Vendor, "HTTPClient"):
		c.Kind = HTTPBoot
	case strings.HasPrefix(c.Vendor, "PXEClient"):
		c.Kind = PCFirmware
	}
	return c
}

// PiMenu is option 43 as the Pi bootloader wants it: PXE discovery control
// 3, a menu prompt, and a boot menu item whose text is match (the EEPROM's
// PXE_OPTION43, "Raspberry Pi Boot" by default) — the same bytes dnsmasq
// sends for pxe-service=0,"Raspberry Pi Boot".
func PiMenu(match string) []byte {
	var b bytes.Buffer
	b.Write([]byte{6, 1, 3})                 // discovery control
	b.Write([]byte{10, 4, 0, 'P', 'X', 'E'}) // menu prompt: timeout 0, "PXE"
	b.Write([]byte{9, byte(len(match) + 3), 0, 0, byte(len(match))})
	b.WriteString(match)
	b.WriteByte(255)
	return b.Bytes()
}

// PiProxyOffer builds the proxyDHCP answer to a Pi's DISCOVER or REQUEST:
// no address, option 60 "PXEClient", option 43 with the menu, option 97
// echoed, and the server's own address as server identifier (the Pi then
// uses it as its TFTP server).
func PiProxyOffer(req *dhcpv4.DHCPv4, serverIP net.IP, menu string) (*dhcpv4.DHCPv4, error) {
	mt := dhcpv4.MessageTypeOffer
	if msgType(req) == dhcpv4.MessageTypeRequest {
		mt = dhcpv4.MessageTypeAck
	}
	sid := serverIP.To4()
	if sid == nil {
		return nil, fmt.Errorf("pi proxy reply: server address %v is not IPv4", serverIP)
	}
	resp := newReply(req)
	o := resp.Options
	o[dhcpv4.OptionDHCPMessageType.Code()] = []byte{byte(mt)}
	o[dhcpv4.OptionServerIdentifier.Code()] = sid
	o[dhcpv4.OptionClassIdentifier.Code()] = []byte("PXEClient")
	o[dhcpv4.OptionVendorSpecificInformation.Code()] = PiMenu(menu)
	if g := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); g != nil {
		o[dhcpv4.OptionClientMachineIdentifier.Code()] = g
	}
	return resp, nil
}
