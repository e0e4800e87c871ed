//go:build linux

package action

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
)

// nfsRoot mounts option 224's NFS export (read-write, or read-only
// under a RAM overlay) and switches into it.
func (b *Boot) nfsRoot(n bootspec.NFSSpec) error {
	host := n.Server
	ips, err := b.sys().LookupIP(strings.Trim(host, "[]"))
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("cannot resolve NFS server %q: %v", host, err)
	}
	data := n.MountData() + ",addr=" + ips[0].String()
	if n.Version == "3" && !strings.Contains(data, "lock") {
		data += ",nolock" // no rpc.statd in RAM
	}
	root := b.path(newRoot)
	os.MkdirAll(root, 0o755)
	target := root
	flags := uintptr(0)
	if n.Overlay {
		target = b.path(lowerDir)
		flags = unix.MS_RDONLY
		os.MkdirAll(target, 0o755)
	}
	b.Env.Stage("nfs: mount %s on %s (%s)", n.Source(), target, data)
	if err := b.sys().Mount(n.Source(), target, "nfs", flags, data); err != nil {
		hint := ""
		switch {
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EACCES):
			hint = ": is the export path right and exported to this node?"
		case errors.Is(err, unix.ENODEV):
			hint = ": the nfs modules are not loaded"
		case errors.Is(err, unix.ETIMEDOUT), errors.Is(err, unix.ECONNREFUSED), errors.Is(err, unix.EHOSTUNREACH):
			hint = ": is the NFS server up and reachable?"
		}
		return fmt.Errorf("mount %s: %w%s", n.Source(), err, hint)
	}
	var steps undo
	if n.Overlay {
		steps.unmount(b.sys(), target)
		if err := b.overlayRoot(&steps, target, root, ""); err != nil {
			steps.run()
			return err
		}
		b.Env.Stage("nfs: read-only export under a RAM overlay on %s", root)
	} else {
		steps.unmount(b.sys(), root)
	}
	if err := b.Env.SwitchRoot(root, n.Init); err != nil {
		steps.run()
		return fmt.Errorf("%w (pass init=PATH in option 224)", err)
	}
	return nil
}
