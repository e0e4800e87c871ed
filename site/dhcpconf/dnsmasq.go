package dhcpconf

import (
	"bytes"
	"fmt"
	"net"
)

func dnsmasq(m *model) []byte {
	var b bytes.Buffer
	header(&b, m, "#", "dnsmasq --test --conf-file=FILE")
	full := m.From != nil
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	s := m.Server.String()
	if full {
		w("# Run: dnsmasq --conf-file=FILE (DHCP only: port=0 turns its DNS off).")
		w("")
		w("port=0")
		w("interface=%s", m.Interface)
		w("bind-interfaces")
		w("dhcp-range=%s,%s,%s,1h", m.From, m.To, net.IP(m.Net.Mask))
		w("dhcp-leasefile=/var/lib/misc/ramboot-dnsmasq.leases")
	} else {
		w("# FRAGMENT (no --range): hands out no addresses. Save it in /etc/dnsmasq.d/ (or add")
		w("# conf-file=THIS to dnsmasq.conf) next to your dhcp-range for %s's network;", m.Interface)
		w("# dnsmasq must serve %s (interface=%s). In proxy mode dnsmasq before 2.91", m.Interface, m.Interface)
		w("# never sends option 224: give it a full dhcp-range.")
	}
	w("")
	w("# Who is asking (tags; tag-if lines run in order).")
	w("dhcp-vendorclass=set:ramboot-init,ramboot")
	w("dhcp-userclass=set:ipxe,iPXE")
	w("dhcp-vendorclass=set:pxe,PXEClient")
	w("dhcp-match=set:rpi-id,97,%s", colonHex([]byte("\x00RPi4")))
	w("dhcp-match=set:rpi-id,97,%s", colonHex([]byte("\x00RPi5")))
	for _, o := range piOUIsNot3() {
		w("dhcp-mac=set:rpi-mac,%s:*:*:*", colonHex(o))
	}
	w("dhcp-mac=set:rpi3-mac,b8:27:eb:*:*:*")
	for _, a := range x86Arches {
		w("dhcp-match=set:x86,option:client-arch,%d", a)
	}
	w("dhcp-match=set:bios,option:client-arch,0")
	w("dhcp-match=set:efi64,option:client-arch,7")
	w("dhcp-match=set:efi64,option:client-arch,9")
	w("tag-if=set:boot,tag:ramboot-init")
	w("tag-if=set:boot,tag:ipxe")
	w("# A Pi 4/5 bootloader: option 97 RPi4/RPi5, or a Pi MAC and PXEClient (option 93 = 0 alone is a BIOS PC).")
	w("tag-if=set:rpi,tag:rpi-id,tag:!boot")
	w("tag-if=set:rpi,tag:pxe,tag:rpi-mac,tag:!boot")
	w("tag-if=set:rpi3,tag:pxe,tag:rpi3-mac,tag:!rpi-id,tag:!boot")
	w("tag-if=set:pc,tag:pxe,tag:!rpi,tag:!rpi3,tag:!boot")
	if m.PXELinux {
		w("# A BIOS PC, its PXE firmware or an iPXE ROM: pxelinux.0 (pxelinux.cfg/ by TFTP).")
		w("tag-if=set:pxelinux,tag:pxe,tag:bios,tag:!ramboot-init,tag:!rpi,tag:!rpi3")
	}
	w("")
	w("# Raspberry Pi bootloader: option 60, option 43 \"Raspberry Pi Boot\" as dnsmasq's")
	w("# pxe-service=0,\"Raspberry Pi Boot\" sends it, the TFTP server.")
	w("dhcp-option-force=tag:rpi,60,\"PXEClient\"")
	w("dhcp-option-force=tag:rpi,43,%s", colonHex(m.piMenu))
	w("dhcp-option-force=tag:rpi,66,%s", quote(s))
	w("dhcp-boot=tag:rpi,bootcode.bin,,%s", s)
	w("# Pi 3 boot ROM: the menu text with three trailing spaces.")
	w("dhcp-option-force=tag:rpi3,60,\"PXEClient\"")
	w("dhcp-option-force=tag:rpi3,43,%s", colonHex(m.pi3Menu))
	w("dhcp-option-force=tag:rpi3,66,%s", quote(s))
	w("dhcp-boot=tag:rpi3,bootcode.bin,,%s", s)
	w("")
	w("# PCs: iPXE from the tree, then iPXE fetches its script from ramboot (it fills in ${mac:hexhyp}).")
	if m.PXELinux {
		w("dhcp-boot=tag:pxelinux,%s,,%s", PXELinuxFile, s)
	} else {
		w("dhcp-boot=tag:pc,tag:bios,undionly.kpxe,,%s", s)
	}
	w("dhcp-boot=tag:pc,tag:efi64,snponly.efi,,%s", s)
	if m.PXELinux {
		w("dhcp-boot=tag:ipxe,tag:!ramboot-init,tag:x86,tag:!pxelinux,%s,,%s", m.ipxeBase+"amd64", s)
	} else {
		w("dhcp-boot=tag:ipxe,tag:!ramboot-init,tag:x86,%s,,%s", m.ipxeBase+"amd64", s)
	}
	w("dhcp-boot=tag:ipxe,tag:!ramboot-init,tag:!x86,%s,,%s", m.ipxeBase+"arm64", s)
	w("")
	w("# Nodes (nodes.yaml); option 224 is sent even when not asked for.")
	for _, h := range m.hosts {
		line := "dhcp-host=" + h.mac + ",set:" + h.tag
		if h.address != "" {
			line += "," + h.address
		}
		if h.hostname != "" {
			line += "," + h.hostname
		}
		w("# nodes.yaml line %d", h.line)
		w("%s", line)
		if h.option224 != "" {
			w("tag-if=set:own224,tag:%s", h.tag)
			w("dhcp-option-force=tag:%s,224,%s", h.tag, quote(h.option224))
		}
	}
	if m.def224 != "" {
		w("# The defaults' option 224, for ramboot's init on every other node.")
		w("dhcp-option-force=tag:ramboot-init,tag:!own224,224,%s", quote(m.def224))
	}
	return b.Bytes()
}
