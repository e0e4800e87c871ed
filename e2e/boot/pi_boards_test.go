package boot

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
	"github.com/ramboot/ramboot/server/dhcp"
)

// The other Pi generations (notes/rpi-netboot.md, "Other boards"), served
// from one mixed tree: BOARD=rpi3,rpi4,rpi5.
const mixedPis = "rpi3,rpi4,rpi5"

// TestMixedPiTree checks the layout a mixed rack boots from: the firmware
// each generation's ROM or EEPROM asks for at the root, each board's OS in
// its directory, and one config.txt whose model sections send each Pi to
// its directory (os_prefix) with its own device tree.
func TestMixedPiTree(t *testing.T) {
	dir, _ := cache.Image(t, mixedPis)
	for _, f := range []string{"bootcode.bin", "start.elf", "start_cd.elf", "fixup_cd.dat", "start4.elf", "start4cd.elf", "bl31.bin", "config.txt", "manifest.json",
		"rpi3/Image", "rpi3/rootfs.cpio.gz", "rpi3/cmdline.txt", "rpi3/bcm2837-rpi-3-b.dtb", "rpi3/bcm2837-rpi-3-b-plus.dtb",
		"rpi4/Image", "rpi4/bcm2711-rpi-4-b.dtb", "rpi5/Image", "rpi5/bcm2712-rpi-5-b.dtb", "rpi5/cmdline.txt", "rpi5/manifest.json"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("mixed tree lacks %s (%v)", f, err)
		}
	}
	for _, f := range []string{"Image", "rootfs.cpio.gz", "cmdline.txt", "rpi5/start4.elf", "rpi3/bootcode.bin"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("mixed tree has %s: a board's OS files belong in its directory, firmware at the root", f)
		}
	}
	cfg := string(lab.ReadFile(t, filepath.Join(dir, "config.txt")))
	// Order matters: the firmware applies every matching section, later
	// lines win.
	want := `(?s)\[pi3\]\nos_prefix=rpi3/\n.*device_tree=bcm2837-rpi-3-b\.dtb.*\[pi3\+\]\nos_prefix=rpi3/\ndevice_tree=bcm2837-rpi-3-b-plus\.dtb.*` +
		`\[pi4\]\nos_prefix=rpi4/\n.*device_tree=bcm2711-rpi-4-b\.dtb.*armstub=bl31\.bin.*` +
		`\[pi5\]\nos_prefix=rpi5/\nkernel=Image\ninitramfs rootfs\.cpio\.gz followkernel\ndevice_tree=bcm2712-rpi-5-b\.dtb.*\[all\]\s*$`
	if !regexp.MustCompile(want).MatchString(cfg) {
		t.Errorf("mixed config.txt does not have the three model sections in order with os_prefix:\n%s", cfg)
	}
	if regexp.MustCompile(`(?s)\[pi5\][^\[]*(armstub|start_file|arm_64bit)`).MatchString(cfg) {
		t.Errorf("the [pi5] section names firmware files the Pi 5 keeps in its EEPROM:\n%s", cfg)
	}
	if !strings.Contains(string(lab.ReadFile(t, filepath.Join(dir, "rpi5", "cmdline.txt"))), "console=ttyAMA10,115200") {
		t.Error("rpi5/cmdline.txt: no console on the Pi 5's debug UART (ttyAMA10)")
	}
	// The Pi 5's kernel is the one with the RP1 Ethernet drivers.
	m5 := string(lab.ReadFile(t, filepath.Join(dir, "rpi5", "manifest.json")))
	for _, mod := range []string{`"macb"`, `"rp1_pci"`, `"clk_rp1"`, `"pinctrl_rp1"`} {
		if !strings.Contains(strings.ReplaceAll(m5, "-", "_"), mod) {
			t.Errorf("rpi5 manifest lists no module %s", mod)
		}
	}
	m3 := string(lab.ReadFile(t, filepath.Join(dir, "rpi3", "manifest.json")))
	for _, mod := range []string{`"smsc95xx"`, `"lan78xx"`, `"dwc2"`} {
		if !strings.Contains(m3, mod) {
			t.Errorf("rpi3 manifest lists no module %s", mod)
		}
	}
}

// pi3Discover is a Pi 3 boot ROM's DISCOVER: a b8:27:eb MAC, the PXE
// vendor class and architecture 0, no RPi4/RPi5 machine id.
func pi3Discover(t testing.TB, mac net.HardwareAddr) *dhcpv4.DHCPv4 {
	d, err := dhcpv4.NewDiscovery(mac,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(client.PiVendor)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}),
		func(d *dhcpv4.DHCPv4) {
			d.UpdateOption(dhcpv4.OptParameterRequestList(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
				dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionClassIdentifier,
				dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName))
		})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestServePi3Replay replays a Pi 3B's boot ROM against `ramboot serve`
// as the network's only DHCP server (full mode): the ROM never sends a
// DHCPREQUEST, so the lease must be committed at the OFFER; it wants the
// menu text with three trailing spaces; it then fetches bootcode.bin from
// the TFTP root, bootsig.bin (not found is normal), start.elf under its
// serial, and the files config.txt's [pi3] section names in rpi3/.
func TestServePi3Replay(t *testing.T) {
	l := lab.New(t)
	dir, _ := cache.Image(t, mixedPis)
	srv := l.Serve(t, dir, "--dhcp", "full", "--range", "192.0.2.100-192.0.2.101")
	const mac3, serial3 = "b8:27:eb:12:34:56", "d2a3b4c5"
	pi, c := client.DHCPPeer(t, l, "192.0.2.51", mac3)
	hw, _ := net.ParseMAC(mac3)
	answers := client.Exchange(t, c, pi3Discover(t, hw), 2*time.Second)
	if len(answers) != 1 || answers[0].MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("Pi 3 DISCOVER: %d answers, want one OFFER", len(answers))
	}
	off := answers[0]
	if a := off.YourIPAddr.String(); a != "192.0.2.100" && a != "192.0.2.101" {
		t.Fatalf("offer to the Pi 3: address %s, want one of the range", a)
	}
	if got, want := off.Options.Get(dhcpv4.OptionVendorSpecificInformation), dhcp.PiMenu("Raspberry Pi Boot   "); !bytes.Equal(got, want) {
		t.Errorf("option 43 to the Pi 3: %x, want the menu with three trailing spaces %x", got, want)
	}
	if off.ClassIdentifier() != "PXEClient" {
		t.Errorf("option 60 to the Pi 3: %q", off.ClassIdentifier())
	}
	if lt := off.IPAddressLeaseTime(0); lt != dhcp.DefaultBootLease {
		t.Errorf("option 51 to the Pi 3: %v, want serve's --boot-lease default %v (a lease committed at the OFFER is a short one)", lt, dhcp.DefaultBootLease)
	}
	e, _ := lab.WaitLog(t, srv, 0, 5*time.Second, "Pi 3 offer", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("mac") == mac3 && e.Str("event") == "offer"
	})
	if e.Str("kind") != "pi-bootloader" || e.Str("model") != "RPi3" || !strings.Contains(e.Str("detail"), "lease committed") {
		t.Errorf("serve's log for the Pi 3 DISCOVER: %v; want kind pi-bootloader, model RPi3, lease committed", e)
	}
	// No REQUEST follows. The address is the Pi's: another client gets
	// the other one, and a third none.
	other := initDiscover2(t, l, "52:54:00:00:03:01")
	if other == nil {
		t.Fatalf("a second client got no offer; the pool has two addresses and the Pi 3 holds one")
	}
	if other.YourIPAddr.Equal(off.YourIPAddr) {
		t.Fatalf("a second client was offered %v, the Pi 3's committed address", other.YourIPAddr)
	}
	ip := off.YourIPAddr.String()
	lab.Run(t, "ip", "-n", pi.NS, "addr", "add", ip+"/24", "dev", pi.Iface)

	// TFTP, as the Pi 3's ROM and bootcode.bin ask: no options.
	pc := client.TFTP{NS: pi.NS, Server: off.ServerIdentifier().String() + ":69"}
	for _, f := range []struct{ ask, file string }{
		{"bootcode.bin", "bootcode.bin"},
		{serial3 + "/start.elf", "start.elf"},
		{"config.txt", "config.txt"},
		{"start_cd.elf", "start_cd.elf"},
		{"fixup_cd.dat", "fixup_cd.dat"},
		{"rpi3/bcm2837-rpi-3-b.dtb", "rpi3/bcm2837-rpi-3-b.dtb"},
		{"rpi3/cmdline.txt", "rpi3/cmdline.txt"},
	} {
		r, err := pc.Get(f.ask)
		if err != nil || r.ErrCode != -1 {
			t.Fatalf("tftp %s: %v, ERROR %d %q", f.ask, err, r.ErrCode, r.ErrMsg)
		}
		lab.SameBytes(t, "tftp "+f.ask, r.Data, lab.ReadFile(t, filepath.Join(dir, f.file)))
	}
	if r, err := pc.Get("bootsig.bin"); err != nil || r.ErrCode != 1 {
		t.Errorf("tftp bootsig.bin: %v, ERROR %d; want ERROR 1 (not found), which the ROM takes as normal", err, r.ErrCode)
	}
	// And a real client, for the kernel.
	dest := filepath.Join(t.TempDir(), "Image")
	if out, err := pi.Exec(t, 90*time.Second, "tftp", "-m", "binary", lab.Addr, "-c", "get", "rpi3/Image", dest); err != nil {
		t.Fatalf("tftp-hpa rpi3/Image: %v\n%s", err, out)
	}
	lab.SameBytes(t, "tftp-hpa rpi3/Image", lab.ReadFile(t, dest), lab.ReadFile(t, filepath.Join(dir, "rpi3", "Image")))
}

// initDiscover2 sends an ordinary client's DISCOVER from a new peer with
// MAC mac and returns the first OFFER (nil: none).
func initDiscover2(t testing.TB, l *lab.Lab, mac string) *dhcpv4.DHCPv4 {
	_, c := client.DHCPPeer(t, l, "192.0.2.53", mac)
	hw, _ := net.ParseMAC(mac)
	d, err := dhcpv4.NewDiscovery(hw, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:ramboot")))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range client.Exchange(t, c, d, 2*time.Second) {
		if p.MessageType() == dhcpv4.MessageTypeOffer {
			return p
		}
	}
	return nil
}

// TestServePi5Replay replays a Pi 5's EEPROM bootloader next to a router's
// DHCP (dnsmasq): option 97 says RPi5, the proxy answers with the Pi menu,
// and the bootloader's TFTP (tsize, blksize 1468) gets config.txt and the
// rpi5/ files; no GPU firmware is asked for or needed.
func TestServePi5Replay(t *testing.T) {
	lab.Need(t, "atftp", "atftp")
	l := lab.New(t)
	dir, _ := cache.Image(t, mixedPis)
	router := l.Peer(t, "192.0.2.2")
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
	srv := l.Serve(t, dir)
	const mac5, serial5 = "2c:cf:67:10:20:30", "5a5b5c5d"
	pi, c := client.DHCPPeer(t, l, "192.0.2.52", mac5)
	hw, _ := net.ParseMAC(mac5)
	// Option 97: 0, "RPi5", board revision, the MAC's low 4 bytes, serial.
	opt97 := client.MustHex(t, "00"+"52506935"+"00d04170"+"67102030"+serial5)
	mods := client.PiDHCPMods(t)
	mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, opt97))
	disc, err := dhcpv4.NewDiscovery(hw, mods...)
	if err != nil {
		t.Fatal(err)
	}
	var proxy, addr *dhcpv4.DHCPv4
	for _, p := range client.Exchange(t, c, disc, 3*time.Second) {
		switch sid := p.ServerIdentifier(); {
		case sid.Equal(net.ParseIP(lab.Addr)):
			proxy = p
		case sid.Equal(net.ParseIP(router.Addr)):
			addr = p
		}
	}
	if proxy == nil || addr == nil {
		t.Fatalf("Pi 5 DISCOVER: proxy offer %v, address offer %v; want both", proxy != nil, addr != nil)
	}
	if got := proxy.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, client.MustHex(t, client.DnsmasqPiOpt43)) {
		t.Errorf("option 43 to the Pi 5: %x, want dnsmasq's %s", got, client.DnsmasqPiOpt43)
	}
	if got := proxy.Options.Get(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(got, opt97) {
		t.Errorf("option 97 not echoed to the Pi 5: %x", got)
	}
	e, _ := lab.WaitLog(t, srv, 0, 5*time.Second, "Pi 5 offer", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("mac") == mac5 && e.Str("event") == "offer"
	})
	if e.Str("model") != "RPi5" || e.Str("serial") != serial5 {
		t.Errorf("serve's log for the Pi 5: %v; want model RPi5, serial %s", e, serial5)
	}
	lab.Run(t, "ip", "-n", pi.NS, "addr", "add", addr.YourIPAddr.String()+"/24", "dev", pi.Iface)

	pc := client.TFTP{NS: pi.NS, Server: lab.Addr + ":69", Blksize: 1468, Tsize: true}
	for _, f := range []string{"config.txt", "rpi5/bcm2712-rpi-5-b.dtb", "rpi5/cmdline.txt", "rpi5/rootfs.cpio.gz"} {
		r, err := pc.Get(serial5 + "/" + f)
		if err != nil || r.ErrCode != -1 {
			t.Fatalf("tftp %s/%s: %v, ERROR %d %q", serial5, f, err, r.ErrCode, r.ErrMsg)
		}
		lab.SameBytes(t, "tftp "+f, r.Data, lab.ReadFile(t, filepath.Join(dir, f)))
		if r.OACK["blksize"] != "1468" {
			t.Errorf("tftp %s: OACK %v, want blksize 1468", f, r.OACK)
		}
		if e, _ := lab.TFTPLog(t, srv, 0, serial5+"/"+f); e.Str("blksize") != "1468" || e.Str("kind") != "served" {
			t.Errorf("serve's log for %s: %v, want served with blksize 1468", f, e)
		}
	}
	// A real client with the Pi 5's block size, for the kernel.
	dest := filepath.Join(t.TempDir(), "Image")
	if out, err := pi.Exec(t, 90*time.Second, "atftp", "--get", "-r", "rpi5/Image", "-l", dest, "--option", "blksize 1468", "--option", "tsize 0", lab.Addr); err != nil {
		t.Fatalf("atftp rpi5/Image: %v\n%s", err, out)
	}
	lab.SameBytes(t, "atftp rpi5/Image", lab.ReadFile(t, dest), lab.ReadFile(t, filepath.Join(dir, "rpi5", "Image")))
}

// TestBootRaspi3b boots the rpi3 image on QEMU's raspi3b in the lab:
// Debian's kernel with the board's own (unmodified) device tree and
// initramfs, the console on the mini UART (ttyS1) as on a real Pi 3. QEMU
// has neither of the Pi 3's USB Ethernet chips; its usb-net, on the
// emulated dwc2 host controller, stands in, so the init brings up USB and
// Ethernet, gets a lease and option 224 from `ramboot serve` in full mode.
func TestBootRaspi3b(t *testing.T) {
	dir, m := cache.Image(t, "rpi3")
	l := lab.New(t)
	// QEMU's usb-net shows the guest the MAC it is given with the first
	// byte set to 0x40: the init's DHCP comes from that one.
	const qemuMAC, mac = "b8:27:eb:00:00:33", "40:27:eb:00:00:33"
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	lab.WriteFile(t, nodes, "nodes:\n  - mac: "+mac+"\n    hostname: pi3-1\n    option224: shell\n")
	srv := l.Serve(t, dir, "--nodes", nodes, "--dhcp", "full", "--range", "192.0.2.100-192.0.2.150")
	vm := qemu.Boot(t, qemu.Options{Board: "rpi3", NetNS: l.NS, Netdev: qemu.TapNetdev, MAC: qemuMAC,
		Kernel: filepath.Join(dir, "Image"), DTB: filepath.Join(dir, "bcm2837-rpi-3-b.dtb"),
		Initrd: filepath.Join(dir, "rootfs.cpio.gz"), Append: "ramboot.board=rpi3"})
	vm.Expect(`ramboot \[\s*[0-9.]+\] mounts: /proc /sys /dev /run /tmp`, 150*time.Second)
	vm.Expect(`network: \S+ appeared after`, 150*time.Second) // USB enumerates after the init starts
	vm.Expect(`network: \S+ `+mac+` 192\.0\.2\.1[0-5]\d/24`, 60*time.Second)
	vm.Expect(`ramboot e2e on board rpi3 \(Raspberry Pi 3 Model B[^)]*\), kernel `+regexp.QuoteMeta(m.Kernel.Release), 60*time.Second)
	vm.Expect(`host: pi3-1`, 10*time.Second)
	vm.Expect(`224: option 224 says shell`, 10*time.Second)
	vm.ShellRoundTripOn("ttyS1")
	e, _ := lab.WaitLog(t, srv, 0, 5*time.Second, "the init's ack", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("mac") == mac && e.Str("event") == "ack"
	})
	if e.Str("kind") != "ramboot-init" {
		t.Errorf("serve's log for the Pi 3's init: %v, want kind ramboot-init", e)
	}
	vm.NoPanic()
}
