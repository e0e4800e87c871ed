package dhcpconf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// js is a JSON string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// keaHex is a Kea expression literal for bytes: 0x....
func keaHex(b []byte) string { return "0x" + hexStr(b) }

// keaOpt is one option-data entry, always sent (Kea otherwise sends only
// what the client's parameter request list names).
func keaOpt(name string, raw []byte, text string) string {
	if raw != nil {
		return fmt.Sprintf(`{ "name": %s, "csv-format": false, "data": %s, "always-send": true }`, js(name), js(strings.ToUpper(hexStr(raw))))
	}
	return fmt.Sprintf(`{ "name": %s, "data": %s, "always-send": true }`, js(name), js(text))
}

// Kea class tests, in the order the classes are defined (member() sees
// only classes defined before).
func keaClasses(m *model) []string {
	var vendorPXE = `substring(option[60].text,0,9) == 'PXEClient'`
	var macs []string
	for _, o := range piOUIsNot3() {
		macs = append(macs, "substring(pkt4.mac,0,3) == "+keaHex(o))
	}
	var x86 []string
	for _, a := range x86Arches {
		x86 = append(x86, fmt.Sprintf("option[93].hex == 0x%04x", a))
	}
	s := m.Server.String()
	notBIOS, biosFile, biosWhat := "", "undionly.kpxe", "PC BIOS PXE firmware: iPXE for the card's own PXE stack"
	if m.PXELinux {
		// An iPXE ROM on a BIOS PC is a BIOS PC too: pxelinux.0.
		notBIOS = " and not option[93].hex == 0x0000"
		biosFile, biosWhat = PXELinuxFile, "PC BIOS, its PXE firmware or an iPXE ROM: pxelinux.0, which reads pxelinux.cfg/ by TFTP"
	}
	class := func(name, comment, test string, extra ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "    // %s\n    {\n      \"name\": %s,\n      \"test\": %s", comment, js(name), js(test))
		for _, e := range extra {
			b.WriteString(",\n      " + e)
		}
		b.WriteString("\n    }")
		return b.String()
	}
	opts := func(o ...string) string {
		return "\"option-data\": [\n        " + strings.Join(o, ",\n        ") + "\n      ]"
	}
	init := []string{}
	if m.def224 != "" {
		init = append(init, opts("// option 224: "+oneLine(m.def224)+"\n        "+keaOpt("ramboot-224", []byte(m.def224), "")))
	}
	piOpts := func(menu []byte, what string) []string {
		return []string{
			`"next-server": ` + js(s),
			// Kea parses option 43 into sub-options and writes them back
			// sorted, without the end byte (6, 9, 10 instead of
			// dnsmasq's 6, 10, 9, 255); defined as binary in the class,
			// it goes out as the bytes given.
			`"option-def": [ { "name": "vendor-encapsulated-options", "code": 43, "type": "binary" } ]`,
			opts(keaOpt("vendor-class-identifier", nil, "PXEClient"),
				"// option 43: "+what+"\n        "+keaOpt("vendor-encapsulated-options", menu, ""),
				keaOpt("tftp-server-name", nil, s)),
		}
	}
	return []string{
		class("ramboot-init", "ramboot's init (vendor class PXEClient:ramboot): option 224, the defaults' unless its host has one",
			`option[60].text == 'ramboot' or substring(option[60].text,0,8) == 'ramboot:' or substring(option[60].text,-8,all) == ':ramboot'`, init...),
		class("ramboot-ipxe-x86", "iPXE on a PC: its script from ramboot (iPXE fills in ${mac:hexhyp})",
			`option[77].hex == 'iPXE' and not member('ramboot-init') and (`+strings.Join(x86, " or ")+`)`+notBIOS,
			`"next-server": `+js(s), `"boot-file-name": `+js(m.ipxeBase+"amd64")),
		class("ramboot-ipxe-arm64", "iPXE on arm64",
			`option[77].hex == 'iPXE' and not member('ramboot-init') and not member('ramboot-ipxe-x86')`+notBIOS,
			`"next-server": `+js(s), `"boot-file-name": `+js(m.ipxeBase+"arm64")),
		class("ramboot-rpi", "Raspberry Pi 4/5 bootloader: option 97 RPi4/RPi5, or a Pi MAC with vendor class PXEClient (option 93 = 0 alone is a BIOS PC)",
			`not member('ramboot-init') and not member('ramboot-ipxe-x86') and not member('ramboot-ipxe-arm64') and (substring(option[97].hex,0,5) == `+keaHex([]byte("\x00RPi4"))+` or substring(option[97].hex,0,5) == `+keaHex([]byte("\x00RPi5"))+` or (`+vendorPXE+` and (`+strings.Join(macs, " or ")+`)))`,
			piOpts(m.piMenu, `the "Raspberry Pi Boot" menu, as dnsmasq sends it`)...),
		class("ramboot-rpi3", "Raspberry Pi 3 boot ROM (MAC b8:27:eb): the menu text with three trailing spaces. The 3B ROM sends no REQUEST: keep its address reserved.",
			`not member('ramboot-init') and not member('ramboot-ipxe-x86') and not member('ramboot-ipxe-arm64') and not member('ramboot-rpi') and `+vendorPXE+` and substring(pkt4.mac,0,3) == 0xb827eb`,
			piOpts(m.pi3Menu, `the "Raspberry Pi Boot   " menu (Pi 3 padding)`)...),
		class("ramboot-pc-bios", biosWhat,
			`not member('ramboot-init') and not member('ramboot-ipxe-x86') and not member('ramboot-ipxe-arm64') and not member('ramboot-rpi') and not member('ramboot-rpi3') and `+vendorPXE+` and option[93].hex == 0x0000`,
			`"next-server": `+js(s), `"boot-file-name": `+js(biosFile)),
		class("ramboot-pc-uefi", "PC x86-64 UEFI PXE firmware: iPXE on the firmware's network driver",
			`not member('ramboot-init') and not member('ramboot-ipxe-x86') and not member('ramboot-ipxe-arm64') and `+vendorPXE+` and (option[93].hex == 0x0007 or option[93].hex == 0x0009)`,
			`"next-server": `+js(s), `"boot-file-name": "snponly.efi"`),
	}
}

func oneLine(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "*/", "* /")
}

func keaReservations(m *model, indent string) string {
	var rs []string
	for _, h := range m.hosts {
		f := []string{`"hw-address": ` + js(h.mac)}
		if h.hostname != "" {
			f = append(f, `"hostname": `+js(h.hostname))
		}
		if h.address != "" {
			f = append(f, `"ip-address": `+js(h.address))
		}
		if h.option224 != "" {
			f = append(f, `"option-data": [ `+keaOpt("ramboot-224", []byte(h.option224), "")+` ]`)
		}
		c := fmt.Sprintf("%s// nodes.yaml line %d", indent, h.line)
		if h.option224 != "" {
			c += ", option 224: " + oneLine(h.option224)
		}
		rs = append(rs, fmt.Sprintf("%s\n%s{ %s }", c, indent, strings.Join(f, ", ")))
	}
	return "[\n" + strings.Join(rs, ",\n") + "\n" + indent[:len(indent)-2] + "]"
}

func kea(m *model) []byte {
	var b bytes.Buffer
	header(&b, m, "//", "kea-dhcp4 -t FILE")
	full := m.From != nil
	if !full {
		fmt.Fprintf(&b, "// FRAGMENT (no --range): hands out no addresses. Merge into the Dhcp4 map of your\n")
		fmt.Fprintf(&b, "// kea-dhcp4.conf: append \"option-def\" and \"client-classes\" to yours, and move the\n")
		fmt.Fprintf(&b, "// \"reservations\" into the subnet4 entry that serves %s (or keep them global\n", m.Interface)
		fmt.Fprintf(&b, "// with \"reservations-global\": true, as here). Your interfaces-config must listen on %s.\n", m.Interface)
	}
	b.WriteString("{\n\"Dhcp4\": {\n")
	if full {
		fmt.Fprintf(&b, "  \"interfaces-config\": { \"interfaces\": [ %s ] },\n", js(m.Interface))
		b.WriteString("  \"lease-database\": { \"type\": \"memfile\", \"persist\": true, \"lfc-interval\": 3600 },\n")
		b.WriteString("  \"valid-lifetime\": 3600,\n")
	}
	b.WriteString("  \"option-def\": [ { \"name\": \"ramboot-224\", \"code\": 224, \"type\": \"string\" } ],\n")
	b.WriteString("  \"client-classes\": [\n")
	b.WriteString(strings.Join(keaClasses(m), ",\n"))
	b.WriteString("\n  ]")
	if full {
		fmt.Fprintf(&b, ",\n  \"subnet4\": [\n    {\n      \"id\": 1,\n      \"subnet\": %s,\n      \"interface\": %s,\n",
			js(m.Net.String()), js(m.Interface))
		fmt.Fprintf(&b, "      \"pools\": [ { \"pool\": %s } ],\n", js(m.From.String()+" - "+m.To.String()))
		fmt.Fprintf(&b, "      \"reservations\": %s\n    }\n  ]", keaReservations(m, "        "))
	} else {
		b.WriteString(",\n  \"reservations-global\": true,\n  \"reservations-in-subnet\": true,\n")
		fmt.Fprintf(&b, "  \"reservations\": %s", keaReservations(m, "    "))
	}
	b.WriteString("\n}\n}\n")
	return b.Bytes()
}
