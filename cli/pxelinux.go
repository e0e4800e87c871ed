package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/spf13/pflag"

	"github.com/ramboot/ramboot/site/inventory"
	"github.com/ramboot/ramboot/site/pxelinux"
)

type pxelinuxOpts struct {
	root, nodes, server string
	ipxe                bool
	httpPort            int
}

func pxelinuxFlags(stderr io.Writer) (*pflag.FlagSet, *pxelinuxOpts) {
	o := &pxelinuxOpts{}
	fs := pflag.NewFlagSet("pxelinux", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.root, "root", "", "the tree built with --board pc (or a mixed tree with pc)")
	fs.StringVar(&o.nodes, "nodes", "", "the inventory, nodes.yaml: one pxelinux.cfg/01-<mac> per node with a mac")
	fs.StringVar(&o.server, "server", "", "the server's IPv4 address on the nodes' network: fills in {{.Server}} in option224 (needed with --nodes or --ipxe)")
	fs.BoolVar(&o.ipxe, "ipxe", false, "also write boot/<mac>.ipxe per node, the iPXE scripts 'ramboot dhcp-config' names, for a plain HTTP server at --server:--http-port")
	fs.IntVar(&o.httpPort, "http-port", 8080, "the HTTP server's port, for --ipxe")
	return fs, o
}

func pxelinuxUsage(fs *pflag.FlagSet) string {
	return `Usage: ramboot pxelinux --root DIR [--nodes nodes.yaml --server ADDR] [--ipxe]

Writes the classic PXE setup's files into a tree built with --board pc:
pxelinux.cfg/default and one pxelinux.cfg/01-<mac> per inventory node, each
booting the tree's vmlinuz and rootfs.cpio.gz with the node's option 224
(ramboot.224=) and hostname on the kernel command line. The build already
put pxelinux.0, ldlinux.c32 and a pxelinux.cfg/default without an inventory
there. Serve the tree with any TFTP server (tftpd-hpa) and point BIOS PCs at
pxelinux.0 ('ramboot dhcp-config --pxelinux'). A node removed from
nodes.yaml loses its file on the next run.

Examples:
  ramboot pxelinux --root out/pc --nodes nodes.yaml --server 192.0.2.10
  ramboot pxelinux --root out/pc --nodes nodes.yaml --server 192.0.2.10 --ipxe   # and boot/<mac>.ipxe

Flags:
` + fs.FlagUsages()
}

func runPXELinux(_ context.Context, args []string, stdout, stderr io.Writer) error {
	flags, o := pxelinuxFlags(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, pxelinuxUsage(flags)) }
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: pxelinux: %v (see 'ramboot pxelinux --help')", errUsage, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: pxelinux: %s", errUsage, fmt.Sprintf(format, a...))
	}
	if flags.NArg() > 0 {
		return bad("unexpected argument %q (flags only; see 'ramboot pxelinux --help')", flags.Arg(0))
	}
	if o.root == "" {
		return bad("no --root: pass the tree built with --board pc, like --root out/pc")
	}
	var server net.IP
	if o.server != "" {
		if server = net.ParseIP(o.server).To4(); server == nil {
			return bad("--server %q: want an IPv4 address, like 192.0.2.10", o.server)
		}
	} else if o.nodes != "" || o.ipxe {
		return bad("--nodes and --ipxe need --server: the address option224's {{.Server}} and the scripts' URLs name, like --server 192.0.2.10")
	}
	if o.httpPort < 1 || o.httpPort > 65535 {
		return bad("--http-port %d: want 1-65535", o.httpPort)
	}
	board, err := pxelinux.FindBoard(o.root)
	if err != nil {
		return fmt.Errorf("pxelinux: --root: %w", err)
	}
	c := pxelinux.Configs{Board: board, Server: server}
	if o.ipxe {
		c.IPXEBase = fmt.Sprintf("http://%s:%d", server, o.httpPort)
	}
	if o.nodes != "" {
		inv, err := inventory.Load(o.nodes)
		if err != nil {
			return fmt.Errorf("pxelinux: --nodes: %w (fix nodes.yaml; 'ramboot serve' reads the same file)", err)
		}
		c.Inventory, c.Source = inv, o.nodes
	}
	files, err := c.Files()
	if err != nil {
		return err
	}
	names, err := pxelinux.Write(o.root, files)
	if err != nil {
		return fmt.Errorf("pxelinux: %w", err)
	}
	for _, n := range names {
		fmt.Fprintf(stdout, "%s\n", n)
	}
	return nil
}
