package dhcp

import (
	"fmt"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Client architectures from option 93 (RFC 4578, IANA "Processor
// Architecture Types").
const (
	ArchBIOS      = 0  // x86 BIOS; also what a Pi 4/5 bootloader reports
	ArchEFIIA32   = 6  // x86 UEFI, 32-bit
	ArchEFIBC     = 7  // x86-64 UEFI (EFI BC)
	ArchEFIx64    = 9  // x86-64 UEFI, as some firmware reports it
	ArchEFIARM64  = 11 // arm64 UEFI
	ArchHTTPx64   = 16 // x86-64 UEFI HTTP boot
	ArchHTTPARM64 = 19 // arm64 UEFI HTTP boot
)

// PXEBootFile is the first program a PC's firmware loads: iPXE, built for
// the firmware (Debian's ipxe package, laid in the tree by BOARD=pc). ""
// means this tree has nothing for that architecture.
func PXEBootFile(arch uint16) string {
	switch arch {
	case ArchBIOS:
		return "undionly.kpxe" // runs on the card's own PXE stack (UNDI)
	case ArchEFIBC, ArchEFIx64:
		return "snponly.efi" // uses the firmware's network driver (SNP)
	}
	return ""
}

// IsX86 reports whether arch names an x86 PC (as opposed to arm64 UEFI).
// iPXE reports its own build's architecture in option 93 too.
func IsX86(arch uint16) bool {
	switch arch {
	case ArchBIOS, ArchEFIIA32, ArchEFIBC, ArchEFIx64, ArchHTTPx64:
		return true
	}
	return false
}

// pxeDiscoveryBypass is option 43 with PXE discovery control 8: "boot the
// file named in this packet, skip boot server discovery". BIOS PXE ROMs
// honour it; some UEFI firmware does not, so UEFI clients are sent to the
// boot server on port 4011 instead (see pcProxy).
var pxeDiscoveryBypass = []byte{6, 1, 8, 255}

// pcProxy is the proxyDHCP answer to a PC's PXE firmware or a UEFI HTTP
// boot client: no address, the boot file and where to fetch it.
//
// BIOS clients get the file with discovery control 8. UEFI clients get the
// file without option 43: EDK2-based firmware then asks this server again
// on port 4011 (BootServer answers), the way Windows Deployment Services
// and pixiecore are answered by every UEFI firmware seen in the field.
func (s *Server) pcProxy(req *dhcpv4.DHCPv4, c Client, d Decision, ev Event) (*dhcpv4.DHCPv4, Event) {
	if d.BootFile == "" {
		ev.Type, ev.Detail = "ignored", fmt.Sprintf("no boot program for %s (option 93 = %d): %s", c.Kind, c.Arch, archHint(c.Arch))
		return nil, ev
	}
	resp := s.proxyReply(req)
	s.setBootFile(resp, req, c, d.BootFile)
	if c.Kind == PCFirmware && c.Arch == ArchBIOS {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryBypass))
	}
	ev.Type, ev.Detail = typeOf(resp), "boot file "+d.BootFile
	return resp, ev
}

// setBootFile names a PC's boot file in resp: siaddr and sname are this
// server, the file field the file; option 60 says PXEClient (HTTPClient
// for HTTP boot, which UEFI requires), option 97 is echoed (PXE spec 2.1:
// a client may drop a reply without its GUID).
func (s *Server) setBootFile(resp, req *dhcpv4.DHCPv4, c Client, file string) {
	class := "PXEClient"
	if c.Kind == HTTPBoot {
		class = "HTTPClient"
	}
	resp.UpdateOption(dhcpv4.OptClassIdentifier(class))
	resp.ServerIPAddr = s.ServerIP
	resp.ServerHostName = s.ServerIP.String()
	resp.BootFileName = file
	if g := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); g != nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, g))
	}
}

// bootServer answers a PXE client's request on port 4011 (PXE spec 2.1,
// "boot server discovery"): an ACK with the boot file, sent back to the
// client's own address.
func (s *Server) bootServer(req *dhcpv4.DHCPv4, c Client, d Decision, ev Event) (*dhcpv4.DHCPv4, Event) {
	// iPXE asks here too after a proxy offer (its "ProxyDHCP request"),
	// and waits some 15 s for an answer before it goes on without one.
	if c.Kind != PCFirmware && c.Kind != HTTPBoot && c.Kind != IPXE {
		ev.Type, ev.Detail = "ignored", "port 4011 serves PC firmware and iPXE only"
		return nil, ev
	}
	if d.BootFile == "" {
		ev.Type, ev.Detail = "ignored", fmt.Sprintf("no boot program for option 93 = %d: %s", c.Arch, archHint(c.Arch))
		return nil, ev
	}
	resp := s.proxyReply(req) // an ACK: only REQUEST and INFORM get here
	s.setBootFile(resp, req, c, d.BootFile)
	ev.Type, ev.Detail = "ack", "boot server: boot file "+d.BootFile
	return resp, ev
}

func archHint(arch uint16) string {
	switch arch {
	case ArchEFIIA32:
		return "32-bit UEFI is not served (Debian ships no 32-bit iPXE EFI); switch the firmware to legacy BIOS or 64-bit UEFI"
	case ArchEFIARM64, ArchHTTPARM64:
		return "arm64 UEFI clients are served through iPXE only; boot them with iPXE or use a Pi board"
	}
	return "build the tree with BOARD=pc (or add pc to BOARD) so it holds undionly.kpxe, snponly.efi and ipxe.efi"
}
