package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ramboot/ramboot/site/dhcpconf"
	"github.com/ramboot/ramboot/site/inventory"
)

type dhcpConfigOpts struct {
	format, nodes, server, iface, rng string
	httpPort                          int
	pxelinux                          bool
}

func dhcpConfigFlags(stderr io.Writer) (*pflag.FlagSet, *dhcpConfigOpts) {
	o := &dhcpConfigOpts{}
	fs := pflag.NewFlagSet("dhcp-config", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.format, "format", "", "the DHCP server: "+strings.Join(dhcpconf.Formats, ", ")+" (kea-dhcp4, isc-dhcp-server's dhcpd)")
	fs.StringVar(&o.nodes, "nodes", "", "the inventory, nodes.yaml: per-node option 224, hostnames and fixed addresses (default: none, the boot part only)")
	fs.StringVar(&o.server, "server", "", "the ramboot server's IPv4 address on the nodes' network (TFTP and HTTP), ADDR or ADDR/PREFIX (default /24)")
	fs.StringVar(&o.iface, "interface", "", "the DHCP server's interface that faces the nodes")
	fs.StringVar(&o.rng, "range", "", "FROM-TO: also hand out these addresses (a complete config); without it, a fragment for your existing config")
	fs.IntVar(&o.httpPort, "http-port", 8080, "ramboot serve's HTTP port, for iPXE's script URL")
	fs.BoolVar(&o.pxelinux, "pxelinux", false, "send BIOS PCs (PXE firmware and iPXE ROMs) to pxelinux.0, which reads pxelinux.cfg/ ('ramboot pxelinux' writes it), instead of iPXE")
	return fs, o
}

func dhcpConfigUsage(fs *pflag.FlagSet) string {
	return `Usage: ramboot dhcp-config --format kea|isc|dnsmasq --server ADDR --interface IF [--nodes nodes.yaml] [--range FROM-TO]

Prints a configuration that makes your own DHCP server do ramboot's DHCP
part, from the same nodes.yaml 'ramboot serve' reads: the Raspberry Pi
bootloader's boot menu (option 43/60, matched by option 97 and the vendor
class, with the Pi 3's padding), each node's option 224 (the defaults' for
the rest, sent even when not asked for), next-server, the BIOS and UEFI
iPXE boot files and iPXE's script URL. Serve the tree at --server with
'ramboot serve --dhcp off'.

With --range the config is complete and hands out addresses; without it,
it is a fragment whose comments say where it goes in your config.

Examples:
  ramboot dhcp-config --format kea --nodes nodes.yaml --server 192.0.2.10 --interface eth1 --range 192.0.2.100-192.0.2.199 > kea-dhcp4.conf
  kea-dhcp4 -t kea-dhcp4.conf
  ramboot dhcp-config --format isc --nodes nodes.yaml --server 192.0.2.10 --interface eth1 > /etc/dhcp/ramboot.conf
  dhcpd -t -cf /etc/dhcp/dhcpd.conf
  ramboot dhcp-config --format dnsmasq --nodes nodes.yaml --server 192.0.2.10 --interface eth1 > /etc/dnsmasq.d/ramboot.conf
  dnsmasq --test
  ramboot dhcp-config --format isc --pxelinux --nodes nodes.yaml --server 192.0.2.10 --interface eth1 --range 192.0.2.100-192.0.2.199 > /etc/dhcp/dhcpd.conf
      # BIOS PCs boot pxelinux.0 (tftpd-hpa; 'ramboot pxelinux' writes pxelinux.cfg/)

Flags:
` + fs.FlagUsages()
}

func runDHCPConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	flags, o := dhcpConfigFlags(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, dhcpConfigUsage(flags)) }
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: dhcp-config: %v (see 'ramboot dhcp-config --help')", errUsage, err)
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("%w: dhcp-config: unexpected argument %q (flags only; see 'ramboot dhcp-config --help')", errUsage, flags.Arg(0))
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: dhcp-config: %s", errUsage, fmt.Sprintf(format, a...))
	}
	switch o.format {
	case "":
		return bad("no --format: pass --format %s", strings.Join(dhcpconf.Formats, ", --format "))
	case "kea", "isc", "dnsmasq":
	default:
		return bad("unknown --format %q: use %s", o.format, strings.Join(dhcpconf.Formats, ", "))
	}
	if o.iface == "" {
		return bad("no --interface: pass the DHCP server's interface that faces the nodes, like --interface eth1")
	}
	ip, n, err := dhcpconf.ParseServer(o.server)
	if err != nil {
		return bad("%v", err)
	}
	if o.httpPort < 1 || o.httpPort > 65535 {
		return bad("--http-port %d: want 1-65535", o.httpPort)
	}
	opts := dhcpconf.Options{Format: o.format, Server: ip, Net: n, Interface: o.iface, HTTPPort: o.httpPort, PXELinux: o.pxelinux}
	if o.rng != "" {
		if opts.From, opts.To, err = dhcpconf.ParseRange(o.rng, ip, n); err != nil {
			return bad("%v", err)
		}
	}
	if o.nodes != "" {
		inv, err := inventory.Load(o.nodes)
		if err != nil {
			return fmt.Errorf("dhcp-config: --nodes: %w (fix nodes.yaml; 'ramboot serve' reads the same file)", err)
		}
		opts.Inventory, opts.Source = inv, o.nodes
	}
	var b bytes.Buffer
	if err := dhcpconf.Generate(&b, opts); err != nil {
		return fmt.Errorf("dhcp-config: %w", err)
	}
	_, err = stdout.Write(b.Bytes())
	return err
}
