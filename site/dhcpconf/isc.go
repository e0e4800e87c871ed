package dhcpconf

import (
	"bytes"
	"fmt"
	"net"
	"strings"
)

// iscForce makes dhcpd send options the client did not ask for: it sends
// only what the parameter request list names, so append the codes to it.
func iscForce(codes ...byte) string {
	return fmt.Sprintf("if exists dhcp-parameter-request-list {\n    option dhcp-parameter-request-list = concat(option dhcp-parameter-request-list, %s);\n  }",
		strings.ReplaceAll(colonHex(codes), ":", ", "))
}

// iscOpt is option name's data, or "-" when the client did not send it.
func iscOpt(name string) string { return `pick-first-value(option ` + name + `, "-")` }

func isc(m *model) []byte {
	var b bytes.Buffer
	header(&b, m, "#", "dhcpd -t -cf FILE")
	full := m.From != nil
	if full {
		fmt.Fprintf(&b, "# Run: dhcpd -4 -cf FILE %s (Debian: INTERFACESv4=\"%s\" in /etc/default/isc-dhcp-server).\n", m.Interface, m.Interface)
	} else {
		fmt.Fprintf(&b, "# FRAGMENT (no --range): hands out no addresses. Put it at the top level of your\n")
		fmt.Fprintf(&b, "# dhcpd.conf (outside any subnet), or save it as /etc/dhcp/ramboot.conf and add\n")
		fmt.Fprintf(&b, "# `include \"/etc/dhcp/ramboot.conf\";`. dhcpd must serve %s (INTERFACESv4).\n", m.Interface)
	}
	s := m.Server.String()
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("")
	w("option ramboot-224 code 224 = text;")
	if full {
		w("authoritative;")
		w("ddns-update-style none;")
		w("default-lease-time 3600;")
		w("max-lease-time 7200;")
	}
	// dhcpd's expressions on an option the client did not send do not
	// evaluate, and a class whose match does not evaluate does not
	// match, even under "not": each option read goes through
	// pick-first-value with a stand-in, so every test is true or false.
	vc, uc, arch, cid := iscOpt("vendor-class-identifier"), iscOpt("user-class"), iscOpt("pxe-system-type"), iscOpt("pxe-client-id")
	initE := fmt.Sprintf(`(%s = "ramboot" or substring(%s, 0, 8) = "ramboot:" or suffix(%s, 8) = ":ramboot")`, vc, vc, vc)
	ipxeE := fmt.Sprintf(`(%s = "iPXE")`, uc)
	var x86 []string
	for _, a := range x86Arches {
		x86 = append(x86, fmt.Sprintf("%s = %02x:%02x", arch, a>>8, a&0xff))
	}
	x86E := "(" + strings.Join(x86, " or ") + ")"
	pxeE := fmt.Sprintf(`substring(%s, 0, 9) = "PXEClient"`, vc)
	piIDE := fmt.Sprintf("(substring(%s, 0, 5) = %s or substring(%s, 0, 5) = %s)", cid,
		colonHex([]byte("\x00RPi4")), cid, colonHex([]byte("\x00RPi5")))
	var macs []string
	for _, o := range piOUIsNot3() {
		macs = append(macs, "substring(hardware, 1, 3) = "+colonHex(o))
	}
	piMACE := "(" + strings.Join(macs, " or ") + ")"
	pi3MACE := "(substring(hardware, 1, 3) = b8:27:eb)"
	notBoot := fmt.Sprintf("not %s and not %s", initE, ipxeE)
	class := func(name, comment, match string, body ...string) {
		w("")
		w("# %s", comment)
		w("class %s {", quote(name))
		w("  match if %s;", match)
		for _, l := range body {
			w("  %s", l)
		}
		w("}")
	}
	var initBody []string
	if m.def224 != "" {
		initBody = []string{"option ramboot-224 " + quote(m.def224) + ";", iscForce(224)}
	}
	class("ramboot-init", "ramboot's init (vendor class PXEClient:ramboot): option 224, the defaults' unless its host has one", initE, initBody...)
	biosE := "(" + arch + " = 00:00)"
	ipxeX86 := fmt.Sprintf("not %s and %s and %s", initE, ipxeE, x86E)
	if m.PXELinux {
		// An iPXE ROM on a BIOS PC is a BIOS PC too: pxelinux.0 (below).
		ipxeX86 += " and not " + biosE
	}
	class("ramboot-ipxe-x86", "iPXE on a PC: its script from ramboot (iPXE fills in ${mac:hexhyp})",
		ipxeX86,
		"next-server "+s+";", "filename "+quote(m.ipxeBase+"amd64")+";")
	class("ramboot-ipxe-arm64", "iPXE on arm64",
		fmt.Sprintf("not %s and %s and not %s", initE, ipxeE, x86E),
		"next-server "+s+";", "filename "+quote(m.ipxeBase+"arm64")+";")
	piBody := func(menu []byte) []string {
		return []string{
			"next-server " + s + ";",
			`option vendor-class-identifier "PXEClient";`,
			"option vendor-encapsulated-options " + colonHex(menu) + ";",
			"option tftp-server-name " + quote(s) + ";",
			iscForce(43, 60, 66),
		}
	}
	class("ramboot-rpi", "Raspberry Pi 4/5 bootloader: option 97 RPi4/RPi5, or a Pi MAC with vendor class PXEClient (option 93 = 0 alone is a BIOS PC). Option 43: the \"Raspberry Pi Boot\" menu as dnsmasq sends it.",
		fmt.Sprintf("%s and (%s or (%s and %s))", notBoot, piIDE, pxeE, piMACE), piBody(m.piMenu)...)
	class("ramboot-rpi3", "Raspberry Pi 3 boot ROM (MAC b8:27:eb): the menu text with three trailing spaces. The 3B ROM sends no REQUEST: give it a fixed-address.",
		fmt.Sprintf("%s and not %s and %s and %s", notBoot, piIDE, pxeE, pi3MACE), piBody(m.pi3Menu)...)
	pc := fmt.Sprintf("%s and not %s and not %s and not %s and %s", notBoot, piIDE, piMACE, pi3MACE, pxeE)
	if m.PXELinux {
		bios := fmt.Sprintf("not %s and not %s and not %s and not %s and %s and %s", initE, piIDE, piMACE, pi3MACE, pxeE, biosE)
		class("ramboot-pc-bios", "PC BIOS, its PXE firmware or an iPXE ROM: pxelinux.0, which reads pxelinux.cfg/ by TFTP",
			bios, "next-server "+s+";", "filename "+quote(PXELinuxFile)+";")
	} else {
		class("ramboot-pc-bios", "PC BIOS PXE firmware: iPXE for the card's own PXE stack",
			pc+" and "+biosE, "next-server "+s+";", `filename "undionly.kpxe";`)
	}
	class("ramboot-pc-uefi", "PC x86-64 UEFI PXE firmware: iPXE on the firmware's network driver",
		pc+" and ("+arch+" = 00:07 or "+arch+" = 00:09)", "next-server "+s+";", `filename "snponly.efi";`)
	if full {
		w("")
		w("subnet %s netmask %s {", m.Net.IP, net.IP(m.Net.Mask))
		w("  range %s %s;", m.From, m.To)
		w("}")
	}
	for _, h := range m.hosts {
		w("")
		w("# nodes.yaml line %d", h.line)
		w("host ramboot-%s {", h.tag)
		w("  hardware ethernet %s;", h.mac)
		if h.address != "" {
			w("  fixed-address %s;", h.address)
		}
		if h.hostname != "" {
			w("  option host-name %s;", quote(h.hostname))
		}
		if h.option224 != "" {
			w("  option ramboot-224 %s;", quote(h.option224))
			// A host's list replaces its class's: force the Pi's too
			// (sent only where a class sets them).
			w("  %s", iscForce(43, 60, 66, 224))
		}
		w("}")
	}
	return b.Bytes()
}
