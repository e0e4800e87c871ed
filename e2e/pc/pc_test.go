package pc

import (
	"bytes"
	"fmt"
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
	"github.com/ramboot/ramboot/internal/netnstest"
)

// PC scenarios (BOARD=pc): QEMU x86-64 guests network-boot from
// `ramboot serve` in the lab, through a real PXE client each time:
//
//   - BIOS: SeaBIOS runs the NIC's option ROM, which is iPXE (QEMU ships
//     it); iPXE says so in its user class and gets its script by HTTP.
//   - UEFI: OVMF with the NIC's option ROM switched off (romfile=), so the
//     PXE client is EDK2's own: it gets snponly.efi by TFTP (through the
//     port-4011 boot server in proxy mode), which is Debian's iPXE, which
//     then gets its script.
//
// Either way the script boots the tree's vmlinuz and rootfs.cpio.gz with
// the node's option 224 on the kernel command line.

// pcScriptServed waits for serve's log of the node's iPXE script and the
// kernel and initramfs downloads.
func pcScriptServed(t testing.TB, srv *lab.Proc, mac, dir string) {
	t.Helper()
	script, _ := lab.WaitLog(t, srv, 0, 5*time.Second, "ipxe-script for "+mac, func(e lab.LogLine) bool {
		return e.Msg() == "http" && e.Str("event") == "ipxe-script" && e.Str("mac") == mac
	})
	// How long iPXE took from serve's answer to asking for the script.
	// QEMU's iPXE ROM (2019) spends ~15 s of it in "Configuring": it waits
	// for an IPv6 router advertisement, and the lab has no IPv6 router.
	for _, e := range lab.Log(srv) {
		if e.Str("mac") == mac {
			t.Logf("serve: %s", e)
		}
	}
	for _, e := range lab.Log(srv) {
		if e.Msg() == "dhcp" && e.Str("mac") == mac && e.Str("kind") == "ipxe" {
			t0, _ := time.Parse(time.RFC3339Nano, e.Str("time"))
			t1, _ := time.Parse(time.RFC3339Nano, script.Str("time"))
			t.Logf("iPXE: first answer (%s %s) to script request: %v", e.Str("event"), e.Str("detail"), t1.Sub(t0).Round(time.Millisecond))
			break
		}
	}
	for _, p := range []string{dir + "/vmlinuz", dir + "/rootfs.cpio.gz"} {
		lab.WaitLog(t, srv, 0, 5*time.Second, "GET "+p, func(e lab.LogLine) bool {
			return e.Msg() == "http" && e.Str("path") == p
		})
	}
}

// TestPCBIOSProxyShell: a BIOS PC next to a router's DHCP (dnsmasq on
// another host): serve's proxy offer points its iPXE ROM at the script;
// the init gets option 224 "shell" from the command line.
func TestPCBIOSProxyShell(t *testing.T) {
	lab.Skip(t)
	dir, m := cache.Image(t, "pc")
	l := lab.New(t)
	router := l.Peer(t, "192.0.2.2")
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
	const mac = "52:54:00:12:34:60"
	srv := l.ServeNode(t, dir, mac, "pc-1", "shell", "--dhcp", "proxy")
	t0 := time.Now()
	vm := l.BootPC(t, mac, false)
	e, _ := lab.WaitLog(t, srv, 0, 120*time.Second, "proxy offer to iPXE", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("mac") == mac && e.Str("event") == "offer"
	})
	if e.Str("kind") != "ipxe" || !strings.Contains(e.Str("detail"), "/boot/52-54-00-12-34-60.ipxe?arch=amd64") {
		t.Errorf("serve's offer to the BIOS iPXE ROM: %v; want kind ipxe and the script URL with arch=amd64", e)
	}
	vm.Expect(`ramboot e2e on board pc \(QEMU .*\), kernel `+regexp.QuoteMeta(m.Kernel.Release), 180*time.Second)
	vm.Expect(`cmdline: .*console=ttyS0,115200 ramboot\.board=pc ramboot\.224=shell ramboot\.hostname=pc-1`, 10*time.Second)
	vm.Expect(`224: option 224 says shell`, 60*time.Second)
	vm.ShellRoundTripOn("ttyS0")
	t.Logf("BIOS PC: power-on to shell in %v", time.Since(t0).Round(time.Millisecond))
	// The network comes up behind the shell (for SSH): an address from
	// the router's dnsmasq, serve's proxy answering the init. The line
	// may come before the shell's answer: the whole console is searched.
	netUp := regexp.MustCompile(`network: \S+ ` + mac + ` 192\.0\.2\.1[0-5]\d/24 via 192\.0\.2\.2`)
	for deadline := time.Now().Add(60 * time.Second); !netUp.MatchString(vm.Output()); time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the console within 60s", netUp)
		}
	}
	pcScriptServed(t, srv, mac, "")
	// Its hardware facts, from DMI (a q35 guest, no disk).
	if hw := l.Hardware(t, mac, 20*time.Second); !regexp.MustCompile(`^QEMU Standard PC \(Q35 \+ ICH9, 2009\); [1-9] cores \([^)]+\); [0-9]+ MB; disks: [^;]*; NICs: \S+ \S+`).MatchString(hw) {
		t.Errorf("the PC's facts on the status board: %q", hw)
	}
	vm.NoPanic()
}

// TestPCUEFIProxyShell: OVMF's own PXE client, proxy mode: the proxy
// offer names snponly.efi, the firmware asks the boot server on port
// 4011, fetches snponly.efi by TFTP, and Debian's iPXE boots the script,
// from a mixed tree (rpi4,pc): the script names pc/vmlinuz.
func TestPCUEFIProxyShell(t *testing.T) {
	lab.Skip(t)
	dir, _ := cache.Image(t, "rpi4,pc") // a mixed tree: iPXE binaries at the root, the OS in pc/
	l := lab.New(t)
	router := l.Peer(t, "192.0.2.2")
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
	const mac = "52:54:00:12:34:61"
	srv := l.ServeNode(t, dir, mac, "pc-2", "shell", "--dhcp", "proxy")
	t0 := time.Now()
	vm := l.BootPC(t, mac, true)
	e, _ := lab.WaitLog(t, srv, 0, 180*time.Second, "proxy offer to UEFI firmware", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("mac") == mac && e.Str("kind") == "pc-firmware" && e.Str("event") == "offer"
	})
	if e.Str("detail") != "boot file snponly.efi" {
		t.Errorf("proxy offer to OVMF: %v; want boot file snponly.efi", e)
	}
	lab.WaitLog(t, srv, 0, 60*time.Second, "boot server ack", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("mac") == mac && e.Str("event") == "ack" && strings.HasPrefix(e.Str("detail"), "boot server:")
	})
	lab.TFTPLog(t, srv, 0, "snponly.efi")
	lab.WaitLog(t, srv, 0, 120*time.Second, "iPXE's proxy offer", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("mac") == mac && e.Str("kind") == "ipxe"
	})
	vm.Expect(`cmdline: .*ramboot\.board=pc ramboot\.224=shell ramboot\.hostname=pc-2`, 180*time.Second)
	vm.Expect(`224: option 224 says shell`, 60*time.Second)
	vm.ShellRoundTripOn("ttyS0")
	t.Logf("UEFI PC: power-on to shell in %v", time.Since(t0).Round(time.Millisecond))
	pcScriptServed(t, srv, mac, "/pc")
	vm.NoPanic()
}

// TestPCNFSRoots: the classic diskless cluster, with serve as the only
// DHCP server (full mode): one node boots its own export, as the Gentoo
// diskless recipe lays them out (/nodes/<hostname>), read-write; another
// boots a shared read-only export under a RAM overlay, and the export is
// left as it was.
func TestPCNFSRoots(t *testing.T) {
	lab.Skip(t)
	dir, _ := cache.Image(t, "pc")
	t.Run("per-node export", func(t *testing.T) {
		l := lab.New(t)
		root := cache.NFSRoot(t, "amd64")
		l.Ganesha(t, lab.Export{Path: root, Pseudo: "/nodes/pc-3"})
		const mac = "52:54:00:12:34:62"
		srv := l.ServeNode(t, dir, mac, "pc-3", "nfs://{{.Server}}/nodes/{{.Hostname}}?vers=3",
			"--dhcp", "full", "--range", "192.0.2.100-192.0.2.150")
		vm := l.BootPC(t, mac, false)
		e, _ := lab.WaitLog(t, srv, 0, 120*time.Second, "full-mode offer to iPXE", func(e lab.LogLine) bool {
			return e.Msg() == "dhcp" && e.Str("mac") == mac && e.Str("kind") == "ipxe" && e.Str("event") == "offer"
		})
		if !strings.HasPrefix(e.Str("ip"), "192.0.2.1") {
			t.Errorf("full mode offer without an address from the range: %v", e)
		}
		vm.Expect(`ramboot\.224=nfs://192\.0\.2\.1/nodes/pc-3\?vers=3`, 180*time.Second)
		vm.Expect(`224: NFS root`, 60*time.Second)
		vm.Expect(`NFSROOT-OK`, 90*time.Second)
		vm.Expect(`ROOT nfs \S*vers=3,.*nolock`, 10*time.Second)
		vm.Expect(`RW-OK /ramboot-probe`, 30*time.Second)
		if b, err := os.ReadFile(filepath.Join(root, "ramboot-probe")); err != nil || !strings.HasPrefix(string(b), "written by nfsinit") {
			t.Errorf("the node's probe file is not in its export: %q, %v", b, err)
		}
		vm.NoPanic()
	})
	t.Run("shared read-only export with overlay", func(t *testing.T) {
		l := lab.New(t)
		root := cache.NFSRoot(t, "amd64")
		before := lab.TreeDigest(t, root)
		l.Ganesha(t, lab.Export{Path: root, Pseudo: "/shared", RO: true})
		const mac = "52:54:00:12:34:63"
		srv := l.ServeNode(t, dir, mac, "pc-4", "nfs://{{.Server}}/shared?vers=3&overlay",
			"--dhcp", "full", "--range", "192.0.2.100-192.0.2.150")
		vm := l.BootPC(t, mac, false)
		vm.Expect(`224: NFS root`, 180*time.Second)
		vm.Expect(`nfs: read-only export under a RAM overlay`, 60*time.Second)
		vm.Expect(`NFSROOT-OK`, 90*time.Second)
		vm.Expect(`ROOT overlay \S*lowerdir=/run/ramboot/lower,upperdir=/run/ramboot/rw/upper`, 10*time.Second)
		vm.Expect(`RW-OK /ramboot-probe`, 30*time.Second)
		if after := lab.TreeDigest(t, root); after != before {
			t.Errorf("the shared read-only export changed on the server:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		pcScriptServed(t, srv, mac, "")
		vm.NoPanic()
	})
}

// TestServePCReplay replays what a PC's PXE firmware does, against `ramboot
// serve` in proxy mode next to a router's DHCP (dnsmasq): a BIOS ROM
// (option 93 = 0, like a Pi, but no Pi signs) gets undionly.kpxe with PXE
// discovery bypassed; UEFI firmware (93 = 7) gets snponly.efi named, asks
// the boot server on port 4011 and gets its ACK; each program then comes
// by TFTP to a real client (tftp-hpa, curl) byte for byte. The QEMU boots
// above run through iPXE ROMs and OVMF; this is the path a BIOS machine's
// own (non-iPXE) PXE ROM takes.
func TestServePCReplay(t *testing.T) {
	lab.Need(t, "tftp", "tftp-hpa")
	lab.Need(t, "curl", "curl")
	l := lab.New(t)
	dir, _ := cache.Image(t, "pc")
	router := l.Peer(t, "192.0.2.2")
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
	srv := l.Serve(t, dir)
	const mac = "52:54:00:ab:cd:01"
	pc, c := client.DHCPPeer(t, l, "192.0.2.60", mac)
	hw, _ := net.ParseMAC(mac)
	guid := append([]byte{0}, bytes.Repeat([]byte{0x5a}, 16)...)
	firmware := func(arch uint16, vendor string, more ...dhcpv4.Modifier) []dhcpv4.Modifier {
		return append([]dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendor)),
			dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(arch >> 8), byte(arch)}),
			dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 16}),
			dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid),
			func(d *dhcpv4.DHCPv4) {
				d.UpdateOption(dhcpv4.OptParameterRequestList(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
					dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionClassIdentifier,
					dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName))
			},
		}, more...)
	}
	discover := func(arch uint16, vendor string) (proxy, addr *dhcpv4.DHCPv4) {
		t.Helper()
		d, err := dhcpv4.NewDiscovery(hw, firmware(arch, vendor)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range client.Exchange(t, c, d, 3*time.Second) {
			t.Logf("arch %d: answer to DISCOVER: %s", arch, p.Summary())
			switch sid := p.ServerIdentifier(); {
			case sid.Equal(net.ParseIP(lab.Addr)):
				proxy = p
			case sid.Equal(net.ParseIP(router.Addr)):
				addr = p
			}
		}
		if proxy == nil || addr == nil {
			t.Fatalf("arch %d DISCOVER: proxy offer %v, address offer %v; want both", arch, proxy != nil, addr != nil)
		}
		if !proxy.YourIPAddr.IsUnspecified() {
			t.Errorf("arch %d: the proxy offered an address, %v", arch, proxy.YourIPAddr)
		}
		if !proxy.ServerIPAddr.Equal(net.ParseIP(lab.Addr)) || proxy.ClassIdentifier() != "PXEClient" ||
			!bytes.Equal(proxy.Options.Get(dhcpv4.OptionClientMachineIdentifier), guid) {
			t.Errorf("arch %d proxy offer: siaddr %v, option 60 %q, 97 %x; want %s, PXEClient and the GUID echoed",
				arch, proxy.ServerIPAddr, proxy.ClassIdentifier(), proxy.Options.Get(dhcpv4.OptionClientMachineIdentifier), lab.Addr)
		}
		return proxy, addr
	}
	tftpGet := func(file string, args ...string) {
		t.Helper()
		dest := filepath.Join(t.TempDir(), file)
		args = append(args, dest)
		if out, err := pc.Exec(t, 60*time.Second, args[0], args[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
		lab.SameBytes(t, args[0]+" "+file, lab.ReadFile(t, dest), lab.ReadFile(t, filepath.Join(dir, file)))
	}

	// BIOS.
	proxy, addr := discover(0, "PXEClient:Arch:00000:UNDI:002001")
	if proxy.BootFileName != "undionly.kpxe" || !bytes.Equal(proxy.Options.Get(dhcpv4.OptionVendorSpecificInformation), []byte{6, 1, 8, 255}) {
		t.Errorf("BIOS proxy offer: file %q, option 43 %x; want undionly.kpxe and discovery control 8 (boot the named file)",
			proxy.BootFileName, proxy.Options.Get(dhcpv4.OptionVendorSpecificInformation))
	}
	e, _ := lab.WaitLog(t, srv, 0, 5*time.Second, "BIOS offer", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("event") == "offer" && e.Str("mac") == mac
	})
	if e.Str("kind") != "pc-firmware" {
		t.Errorf("serve's log for the BIOS DISCOVER: %v, want kind pc-firmware", e)
	}
	lab.Run(t, "ip", "-n", pc.NS, "addr", "add", addr.YourIPAddr.String()+"/24", "dev", pc.Iface)
	tftpGet("undionly.kpxe", "tftp", "-m", "binary", proxy.ServerIPAddr.String(), "-c", "get", proxy.BootFileName)

	// UEFI x86-64: DISCOVER, then the boot server on port 4011.
	proxy, addr = discover(7, "PXEClient:Arch:00007:UNDI:003016")
	if proxy.BootFileName != "snponly.efi" || proxy.Options.Get(dhcpv4.OptionVendorSpecificInformation) != nil {
		t.Errorf("UEFI proxy offer: file %q, option 43 %x; want snponly.efi and no 43 (the firmware asks port 4011)",
			proxy.BootFileName, proxy.Options.Get(dhcpv4.OptionVendorSpecificInformation))
	}
	req, err := dhcpv4.New(firmware(7, "PXEClient:Arch:00007:UNDI:003016",
		dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(addr.YourIPAddr))...)
	if err != nil {
		t.Fatal(err)
	}
	var ack *dhcpv4.DHCPv4
	if err := netnstest.Do(pc.NS, func() error {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: addr.YourIPAddr, Port: 68})
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.WriteTo(req.ToBytes(), &net.UDPAddr{IP: net.ParseIP(lab.Addr), Port: 4011}); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no answer from port 4011: %w", err)
		}
		ack, err = dhcpv4.FromBytes(buf[:n])
		return err
	}); err != nil {
		t.Fatalf("boot server request: %v", err)
	}
	if ack.MessageType() != dhcpv4.MessageTypeAck || ack.TransactionID != req.TransactionID || ack.BootFileName != "snponly.efi" ||
		!ack.ServerIPAddr.Equal(net.ParseIP(lab.Addr)) {
		t.Errorf("boot server answer: %s; want an ACK for xid %s naming snponly.efi on %s", ack.Summary(), req.TransactionID, lab.Addr)
	}
	tftpGet("snponly.efi", "curl", "-sS", "--max-time", "50", "tftp://"+ack.ServerIPAddr.String()+"/"+ack.BootFileName, "-o")
	lab.TFTPLog(t, srv, 0, "snponly.efi")
}

// TestPCUEFIHTTPBoot: OVMF's UEFI HTTP boot client (PXE switched off in
// the firmware), with serve as the only DHCP server and as a proxy next to
// a router's: the firmware says HTTPClient, gets ipxe.efi's URL, loads it
// over HTTP, and iPXE boots the script.
func TestPCUEFIHTTPBoot(t *testing.T) {
	lab.Skip(t)
	dir, _ := cache.Image(t, "pc")
	for _, mode := range []string{"full", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			l := lab.New(t)
			args := []string{"--dhcp", "full", "--range", "192.0.2.100-192.0.2.150"}
			if mode == "proxy" {
				router := l.Peer(t, "192.0.2.2")
				l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
				args = []string{"--dhcp", "proxy"}
			}
			const mac = "52:54:00:12:34:64"
			srv := l.ServeNode(t, dir, mac, "pc-5", "shell", args...)
			vm := l.BootPC(t, mac, true, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
				"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")
			e, _ := lab.WaitLog(t, srv, 0, 180*time.Second, "offer to the HTTP boot client", func(e lab.LogLine) bool {
				return e.Msg() == "dhcp" && e.Str("mac") == mac && e.Str("kind") == "uefi-http" && e.Str("event") == "offer"
			})
			if e.Str("detail") != "boot file http://192.0.2.1:8080/ipxe.efi" {
				t.Errorf("serve's offer to the HTTP boot client: %v; want the URL of ipxe.efi", e)
			}
			lab.WaitLog(t, srv, 0, 120*time.Second, "GET /ipxe.efi", func(e lab.LogLine) bool {
				return e.Msg() == "http" && e.Str("path") == "/ipxe.efi"
			})
			vm.Expect(`cmdline: .*ramboot\.board=pc ramboot\.224=shell ramboot\.hostname=pc-5`, 180*time.Second)
			vm.ShellRoundTripOn("ttyS0")
			pcScriptServed(t, srv, mac, "")
			vm.NoPanic()
		})
	}
}
