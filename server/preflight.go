package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/eeprom"
	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/site/inventory"
	"github.com/ramboot/ramboot/tree"
)

// Preflight is what `ramboot serve --check` found: a line per part that
// is fine, every problem (each one stops Run or makes it serve wrong), and
// warnings (served as asked, but probably not what was meant).
type Preflight struct {
	Summary  []string
	Problems []error
	Warnings []string
}

func (p *Preflight) problem(format string, args ...any) {
	p.Problems = append(p.Problems, fmt.Errorf(format, args...))
}

func (p *Preflight) warn(format string, args ...any) {
	p.Warnings = append(p.Warnings, fmt.Sprintf(format, args...))
}

func (p *Preflight) ok(format string, args ...any) {
	p.Summary = append(p.Summary, fmt.Sprintf(format, args...))
}

// Preflight checks everything Run needs, and reports every problem rather
// than the first: the settings (as Check), the tree (a built tree: its
// manifests and the files they list), the inventory (it parses: no MAC,
// serial, hostname or address twice; fixed addresses on the served
// network, not the server's own, and in full mode inside or outside the
// range as the pool treats them), the interface (exists, has IPv4), the
// listen addresses and, in full mode, the lease file. It binds no socket
// and starts nothing; it leaves s as it was.
func (s *Server) Preflight() *Preflight {
	p := &Preflight{}
	mode := s.DHCP
	if mode == "" {
		mode = dhcp.Proxy
	}
	// Settings: every rule of Check, each reported.
	if s.Root == "" {
		p.problem("--root: name the built tree to serve (for example out/rpi4)")
	}
	if s.Interface == "" {
		p.problem("--interface: name the one interface to serve (ramboot serve never answers on all interfaces)")
	}
	switch mode {
	case dhcp.Proxy, dhcp.Off:
		if s.Range != "" {
			p.problem("--range is for --dhcp full; proxy mode never hands out addresses")
		}
	case dhcp.Full:
		if s.Range == "" {
			p.problem("--dhcp full needs an explicit --range FROM-TO: a full DHCP server on the wrong network takes it over")
		}
	default:
		p.problem("--dhcp %q: use proxy, full or off", s.DHCP)
	}

	if s.Root != "" {
		s.preflightTree(p)
	}

	// The interface.
	var ipnet *net.IPNet
	if s.Interface != "" {
		ip, n, err := InterfaceIPv4(s.Interface)
		if err != nil {
			p.Problems = append(p.Problems, err)
		} else {
			ipnet = &net.IPNet{IP: ip, Mask: n.Mask}
			ones, _ := n.Mask.Size()
			p.ok("interface: %s, %s/%d", s.Interface, ip, ones)
		}
	}

	// DHCP: the range and the lease file.
	var from, to net.IP
	if mode == dhcp.Full && s.Range != "" {
		f, t, ok := strings.Cut(s.Range, "-")
		from, to = net.ParseIP(strings.TrimSpace(f)).To4(), net.ParseIP(strings.TrimSpace(t)).To4()
		switch {
		case !ok || from == nil || to == nil || ip4u(from) > ip4u(to):
			p.problem("--range %q: want FROM-TO, two IPv4 addresses, the first not above the second (192.0.2.100-192.0.2.199)", s.Range)
			from, to = nil, nil
		case ipnet != nil && (!ipnet.Contains(from) || !ipnet.Contains(to)):
			network := &net.IPNet{IP: ipnet.IP.Mask(ipnet.Mask), Mask: ipnet.Mask}
			p.problem("--range %s is not inside %s's network %s", s.Range, s.Interface, network)
		case ipnet != nil && ip4u(from) <= ip4u(ipnet.IP) && ip4u(ipnet.IP) <= ip4u(to):
			p.problem("--range %s holds the server's own address %s: start or end the range elsewhere", s.Range, ipnet.IP)
		}
		s.preflightLeaseFile(p)
	}
	switch mode {
	case dhcp.Proxy:
		p.ok("dhcp: proxy on %s, ports %d and %d (the network's own DHCP server hands out addresses)", s.Interface, portOr(s.DHCPPort, 67), portOr(s.BootServerPort, 4011))
	case dhcp.Full:
		if from != nil {
			p.ok("dhcp: full on %s, ports %d and %d, range %s-%s (%d addresses), leases in %s, lease time %s",
				s.Interface, portOr(s.DHCPPort, 67), portOr(s.BootServerPort, 4011), from, to, ip4u(to)-ip4u(from)+1, s.leaseFile(), s.leaseTimeOr())
		}
	case dhcp.Off:
		p.ok("dhcp: off (another server sends the boot options)")
	}

	nodes := s.preflightInventory(p, mode, ipnet, from, to)
	if from != nil {
		nodes = max(nodes, int(ip4u(to)-ip4u(from)+1))
	}
	s.preflightNeigh(p, ipnet, nodes)
	s.preflightState(p)

	// Listen addresses, as Run would take them, without binding.
	if ipnet != nil {
		saved := s.ServerIP
		s.ServerIP = ipnet.IP
		var ports []int
		for _, l := range []struct{ flag, addr, port, proto string }{
			{"--tftp", s.TFTPAddr, "69", "tftp"},
			{"--http", s.HTTPAddr, "8080", "http"},
		} {
			addr, _, err := s.listenConfig(l.flag, l.addr, l.port)
			if err != nil {
				p.Problems = append(p.Problems, err)
				continue
			}
			_, port, _ := net.SplitHostPort(addr)
			n, err := strconv.Atoi(port)
			if err != nil || n < 0 || n > 65535 {
				p.problem("%s %s: the port must be a number 0-65535", l.flag, addr)
				continue
			}
			ports = append(ports, n)
			p.ok("%s: %s", l.proto, addr)
		}
		s.ServerIP = saved
		if mode != dhcp.Off {
			ports = append(ports, portOr(s.DHCPPort, 67), portOr(s.BootServerPort, 4011))
		}
		var low []string
		for _, n := range ports {
			if n > 0 && n < 1024 {
				low = append(low, strconv.Itoa(n))
			}
		}
		if len(low) > 0 && !canBindLowPorts() {
			p.warn("ports %s need root or CAP_NET_BIND_SERVICE, which this process lacks (the systemd unit in dist/systemd grants it)", strings.Join(low, ", "))
		}
	}
	return p
}

// Err is nil when the check found no problem, or every problem joined.
func (p *Preflight) Err() error { return errors.Join(p.Problems...) }

// plural is "s" (or the suffix given) unless n is 1.
func plural(n int, suffix ...string) string {
	if n == 1 {
		return ""
	}
	if len(suffix) > 0 {
		return suffix[0]
	}
	return "s"
}

func portOr(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}

func ip4u(ip net.IP) uint32 {
	b := ip.To4()
	if b == nil {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (s *Server) leaseTimeOr() string {
	if s.LeaseTime == 0 {
		return dhcp.DefaultLeaseTime.String()
	}
	return s.LeaseTime.String()
}

// leaseFile is the lease file Run uses in full mode.
func (s *Server) leaseFile() string {
	if s.LeaseFile != "" {
		return s.LeaseFile
	}
	return path.Join(path.Dir(strings.TrimRight(s.Root, "/")), "leases.json")
}

// preflightLeaseFile checks that the lease file can be written where Run
// will write it (a temporary file next to it, renamed over it) and that an
// existing one is readable.
func (s *Server) preflightLeaseFile(p *Preflight) {
	lf := s.leaseFile()
	dir := filepath.Dir(lf)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		p.problem("lease file %s: directory %s does not exist: create it or pass --lease-file", lf, dir)
		return
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		p.problem("lease file %s: directory %s is not writable by this user (%v): pass --lease-file in a writable directory (under systemd, StateDirectory)", lf, dir, err)
	}
	data, err := os.ReadFile(lf)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		p.problem("lease file %s: %v", lf, err)
	default:
		var ls []json.RawMessage
		if err := json.Unmarshal(data, &ls); err != nil {
			p.problem("lease file %s is damaged (%v): move it aside to start with no leases", lf, err)
		}
	}
}

// preflightTree checks that the root is a built tree: a manifest.json (a
// board's, or a mixed tree's with one per board directory) and every file
// each manifest lists, at its listed size.
func (s *Server) preflightTree(p *Preflight) {
	st, err := os.Stat(s.Root)
	if err != nil || !st.IsDir() {
		p.problem("--root %s: not a directory: build it first with `make image BOARD=rpi4`", s.Root)
		return
	}
	// readErr reports a manifest (dir's: the root's or a board's) that
	// tree could not read or parse.
	readErr := func(dir string, err error) bool {
		var pe *fs.PathError
		switch {
		case err == nil:
			return false
		case errors.Is(err, fs.ErrNotExist):
			p.problem("--root %s: no %s: not a built tree (make image BOARD=rpi4 writes one)", s.Root, filepath.Join(dir, tree.ManifestName))
		case errors.As(err, &pe):
			p.problem("--root %s: %v", s.Root, err)
		default:
			p.problem("%v: rebuild the tree", err) // tree's parse error names the file
		}
		return true
	}
	// check checks every file a manifest lists, at its listed size, and
	// a board's kernel and initramfs.
	check := func(dir string, files []tree.FileInfo, board, kernel string) {
		// File names are relative to the tree's root, in a board's
		// directory too ("rpi4/Image", and the firmware at the root).
		for _, f := range files {
			fp := filepath.Join(s.Root, filepath.FromSlash(f.Name))
			st, err := os.Stat(fp)
			switch {
			case err != nil:
				p.problem("tree: %s is listed in %s but missing: rebuild the tree", f.Name, filepath.Join(dir, tree.ManifestName))
			case !st.Mode().IsRegular():
				p.problem("tree: %s is not a regular file", fp)
			case st.Size() != f.Size:
				p.problem("tree: %s has %d bytes, its manifest says %d: rebuild the tree", f.Name, st.Size(), f.Size)
			}
		}
		if board != "" && kernel != "" {
			if _, err := os.Stat(filepath.Join(s.Root, dir, kernel)); err != nil {
				p.problem("tree: board %s has no kernel %s", board, filepath.Join(dir, kernel))
			}
			if _, err := os.Stat(filepath.Join(s.Root, dir, "rootfs.cpio.gz")); err != nil {
				p.problem("tree: board %s has no rootfs.cpio.gz", board)
			}
		}
	}
	m, mixed, err := tree.ReadRoot(s.Root)
	if readErr("", err) {
		return
	}
	switch {
	case m.Board != "":
		check("", m.Files, m.Board, m.KernelFile)
		s.preflightBootImg(p, m)
		p.ok("tree: %s: board %s (%s, kernel %s), %d files", s.Root, m.Board, m.Arch, m.KernelFile, len(m.Files))
	case mixed != nil:
		check("", mixed.Files, "", "")
		var bs []string
		for _, b := range mixed.Boards {
			bm, err := tree.ReadManifest(s.Root, b)
			if readErr(b, err) {
				continue
			}
			check(b, bm.Files, bm.Board, bm.KernelFile)
			s.preflightBootImg(p, bm)
			if bm.Board != b {
				p.problem("tree: %s/manifest.json is for board %q, the tree's manifest says %q", b, bm.Board, b)
			}
			bs = append(bs, fmt.Sprintf("%s (%s)", b, bm.Arch))
		}
		p.ok("tree: %s: mixed, boards %s", s.Root, strings.Join(bs, ", "))
	default:
		check("", m.Files, "", "")
		p.problem("%s: names no board: not a tree that make image wrote", filepath.Join(s.Root, tree.ManifestName))
	}
}

// preflightInventory loads the inventory as Reload does and checks its
// fixed addresses against the served network and, in full mode, the range.
func (s *Server) preflightInventory(p *Preflight, mode dhcp.Mode, ipnet *net.IPNet, from, to net.IP) (nodes int) {
	if s.Nodes == "" {
		p.ok("inventory: none (--nodes): every node gets the defaults")
		return 0
	}
	inv, err := inventory.Load(s.Nodes)
	if err != nil {
		// Load joins every problem of the file, one a line.
		for _, e := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(e, s.Nodes) {
				e = s.Nodes + ": " + e
			}
			p.Problems = append(p.Problems, errors.New(e))
		}
		return 0
	}
	fixed, inside := 0, 0
	for _, n := range inv.Nodes {
		if n.Address == "" {
			continue
		}
		fixed++
		ip := net.ParseIP(n.Address).To4()
		where := fmt.Sprintf("%s: %s", s.Nodes, nodeName(inv, n))
		if mode != dhcp.Full {
			continue
		}
		if ipnet != nil {
			network := &net.IPNet{IP: ipnet.IP.Mask(ipnet.Mask), Mask: ipnet.Mask}
			bcast := ip4u(network.IP) | ^ip4u(net.IP(network.Mask))
			switch {
			case !network.Contains(ip):
				p.problem("%s: address %s is outside %s's network %s: the node could not use it", where, ip, s.Interface, network)
			case ip.Equal(ipnet.IP):
				p.problem("%s: address %s is the server's own", where, ip)
			case ip4u(ip) == ip4u(network.IP) || ip4u(ip) == bcast:
				p.problem("%s: address %s is %s's network or broadcast address", where, ip, network)
			}
		}
		if from != nil && ip4u(from) <= ip4u(ip) && ip4u(ip) <= ip4u(to) {
			inside++
		}
	}
	var server net.IP
	if ipnet != nil {
		server = ipnet.IP
	}
	parsed := preflight224(p, inv, s.Nodes, server)
	msg := fmt.Sprintf("inventory: %s, %d node%s", s.Nodes, len(inv.Nodes), plural(len(inv.Nodes)))
	if parsed > 0 {
		msg += fmt.Sprintf(", option 224 parsed as the init parses it for %d", parsed)
	}
	if inv.Defaults.Option224 != "" {
		msg += ", defaults with option 224"
	}
	switch {
	case fixed == 0:
	case mode == dhcp.Full && from != nil:
		msg += fmt.Sprintf(", %d fixed address%s (%d inside the range, kept out of the dynamic pool; %d outside it)", fixed, plural(fixed, "es"), inside, fixed-inside)
	case mode == dhcp.Full:
		msg += fmt.Sprintf(", %d fixed address%s", fixed, plural(fixed, "es"))
	default:
		p.warn("%s: %d node%s with a fixed address, which only --dhcp full hands out: in %s mode the network's DHCP server gives addresses (ramboot dhcp-config writes its config from this file)", s.Nodes, fixed, plural(fixed), mode)
	}
	p.ok("%s", msg)
	return len(inv.Nodes)
}

// preflight224 renders each node's option 224 (its boot form and, with
// install:, its install form) as serve would hand it out, and the
// defaults' for a MAC the inventory does not list, and parses each as the
// init does: a value the init would refuse (nsf://..., install: without a
// digest setting it understands) is a problem naming the node's line,
// found here rather than on the node. It returns how many values parsed.
func preflight224(p *Preflight, inv *inventory.Inventory, file string, server net.IP) int {
	if server == nil {
		server = net.IPv4(192, 0, 2, 1) // no interface: any address shows the grammar
	}
	type target struct {
		where  string
		mac    net.HardwareAddr
		serial string
	}
	var targets []target
	for _, n := range inv.Nodes {
		mac, _ := net.ParseMAC(strings.ReplaceAll(strings.TrimSpace(n.MAC), "-", ":"))
		targets = append(targets, target{file + ": " + nodeName(inv, n), mac, n.Serial})
	}
	// The defaults, for a made-up MAC no entry has.
	for i := 0; i < 256; i++ {
		mac := net.HardwareAddr{0x02, 0x72, 0x62, 0xff, 0xff, byte(i)}
		if m, ok, _ := inv.Lookup(mac, "", server); !ok || m.Line == 0 {
			targets = append(targets, target{file + ": defaults", mac, ""})
			break
		}
	}
	parsed := 0
	for _, t := range targets {
		m, ok, err := inv.Lookup(t.mac, t.serial, server)
		if err != nil {
			p.problem("%s: %v", t.where, err)
			continue
		}
		if !ok {
			continue
		}
		for _, v := range []struct{ form, value string }{{"option 224", m.Option224}, {"install form of option 224", m.Install}} {
			if v.value == "" {
				continue
			}
			if _, err := bootspec.Parse(v.value); err != nil {
				p.problem("%s: its %s %q would be refused by the node's init: %v", t.where, v.form, v.value, err)
				continue
			}
			parsed++
		}
	}
	return parsed
}

// nodeName names an inventory node in a message: its line and what it is
// matched by.
func nodeName(inv *inventory.Inventory, n inventory.Node) string {
	mac, _ := net.ParseMAC(strings.ReplaceAll(strings.TrimSpace(n.MAC), "-", ":"))
	line := 0
	if m, ok, _ := inv.Lookup(mac, n.Serial, nil); ok {
		line = m.Line
	}
	who := n.Hostname
	if who == "" {
		who = n.MAC
	}
	if who == "" {
		who = "serial " + n.Serial
	}
	if line > 0 {
		return fmt.Sprintf("line %d (%s)", line, who)
	}
	return who
}

// canBindLowPorts reports whether this process may bind ports below 1024:
// root, or CAP_NET_BIND_SERVICE in its effective set.
func canBindLowPorts() bool {
	if os.Geteuid() == 0 {
		return true
	}
	// A lowered net.ipv4.ip_unprivileged_port_start opens them to all.
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n <= 67 {
			return true
		}
	}
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_NET_BIND_SERVICE) != 0
		}
	}
	return false
}

// preflightBootImg checks a board's HTTP-boot files (manifest boot_img):
// boot.img at its listed size and digest, within the bootloader's ramdisk
// limit, and boot.sig a signature file for that digest. A Pi given a
// boot.img its boot.sig does not match refuses it and falls back to TFTP,
// which nobody would see until a rack boots slowly.
func (s *Server) preflightBootImg(p *Preflight, m tree.Manifest) {
	bi := m.BootImg
	if bi == nil {
		return
	}
	rebuild := "rebuild with `ramboot build --http-boot --sign-key KEY`"
	f, err := os.Open(filepath.Join(s.Root, filepath.FromSlash(bi.Name)))
	if err != nil {
		p.problem("tree: board %s: %s is listed in its manifest but missing: %s", m.Board, bi.Name, rebuild)
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	f.Close()
	switch sum := hex.EncodeToString(h.Sum(nil)); {
	case err != nil:
		p.problem("tree: %s: %v", bi.Name, err)
		return
	case n != bi.Size || sum != bi.SHA256:
		p.problem("tree: %s has %d bytes, sha256 %.16s...; its manifest says %d bytes, %.16s...: %s", bi.Name, n, sum, bi.Size, bi.SHA256, rebuild)
		return
	case n > tree.MaxBootImg:
		p.problem("tree: %s has %d bytes, over the bootloader's %d-byte ramdisk limit: make the initramfs smaller", bi.Name, n, tree.MaxBootImg)
		return
	}
	b, err := os.ReadFile(filepath.Join(s.Root, filepath.FromSlash(bi.Sig.Name)))
	if err != nil {
		p.problem("tree: board %s: %s: %v: %s", m.Board, bi.Sig.Name, err, rebuild)
		return
	}
	sig, err := eeprom.ParseSig(b)
	switch {
	case err != nil:
		p.problem("tree: %s: %v: %s", bi.Sig.Name, err, rebuild)
	case sig.SHA256 != bi.SHA256:
		p.problem("tree: %s is for sha256 %.16s..., not %s's %.16s...: the Pi would refuse it; %s", bi.Sig.Name, sig.SHA256, bi.Name, bi.SHA256, rebuild)
	case sig.RSA2048 == nil:
		p.problem("tree: %s has no rsa2048 signature: a Pi with HTTP_HOST set refuses it; %s", bi.Sig.Name, rebuild)
	default:
		p.ok("tree: %s: HTTP boot %s (%d bytes, sha256 %.16s...) with %s", m.Board, bi.Name, bi.Size, bi.SHA256, bi.Sig.Name)
	}
}
