//go:build linux

package initd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/curl"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/kernel/kimage"
	"github.com/ramboot/ramboot/node/ipxe"
	"github.com/ramboot/ramboot/node/kexec"
)

// act does what option 224 says. It returns only on failure (or for the
// shell), with the reason; the caller then starts the provisioning shell.
func (in *Init) act(ctx context.Context, value, source string, env map[string]string) (outcome string) {
	spec, err := bootspec.Parse(value)
	if err != nil {
		return fmt.Sprintf("option 224 from %s: %v", source, err)
	}
	in.report(report.Action, actionText(spec, source))
	switch spec.Kind {
	case bootspec.Shell:
		if strings.TrimSpace(value) == "" {
			return "no option 224: provisioning shell"
		}
		return "option 224 says shell: provisioning shell"
	case bootspec.Chain:
		in.stage("224: chain %s (from %s)", spec.URL, source)
		if err := in.chain(ctx, spec, env); err != nil {
			return fmt.Sprintf("chain %s failed: %v", redact(spec.URL), err)
		}
		return "chain returned without booting"
	case bootspec.NFS:
		in.stage("224: NFS root %s (from %s)", spec, source)
		if err := in.nfsRoot(spec.NFS); err != nil {
			return fmt.Sprintf("NFS root %s failed: %v", spec.NFS.Source(), err)
		}
		return "switch_root returned"
	case bootspec.Local:
		in.stage("224: %s (from %s)", spec, source)
		if err := in.localBoot(ctx, spec.Local); err != nil {
			return fmt.Sprintf("local boot failed: %v", err)
		}
		return "kexec returned"
	case bootspec.Install:
		in.stage("224: install %s onto %s (from %s)", redact(spec.Install.URL), spec.Install.Disk, source)
		if err := in.install(ctx, spec.Install); err != nil {
			return fmt.Sprintf("install failed: %v", err)
		}
		return "install finished without a reboot"
	}
	return fmt.Sprintf("option 224 %q: nothing to do", value)
}

// fetcher fetches http(s) URLs with a size limit and truncation check.
type fetcher struct{ http ipxe.HTTPFetcher }

func (f fetcher) Fetch(ctx context.Context, u string) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	switch pu.Scheme {
	case "file":
		return os.ReadFile(pu.Path)
	case "tftp":
		// u-root's TFTP client: blksize 1450, windowsize 64.
		r, err := curl.DefaultTFTPClient.FetchWithoutCache(ctx, pu)
		if err != nil {
			return nil, fmt.Errorf("tftp %s: %w", u, err)
		}
		data, err := io.ReadAll(io.LimitReader(r, fetchLimit()))
		if err != nil {
			return nil, fmt.Errorf("tftp %s: %w", u, err)
		}
		return data, nil
	}
	return f.http.Fetch(ctx, u)
}

// fetchLimit bounds a script, kernel or initrd held in memory: half of
// what is available (each is also written out for kexec), at most
// ipxe.DefaultMaxBytes. A bigger download fails with the limit named.
func fetchLimit() int64 {
	limit := int64(ipxe.DefaultMaxBytes)
	if _, avail, err := memInfo(); err == nil {
		limit = min(limit, max((avail-64<<20)/2, 1<<20))
	}
	return limit
}

func newFetcher() fetcher {
	return fetcher{http: ipxe.HTTPFetcher{MaxBytes: fetchLimit(), Client: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		ResponseHeaderTimeout: 20 * time.Second,
	}}}}
}

// chain fetches what option 224's URL names and tells it by its first
// bytes: a root image (run from RAM), an iPXE script or a kernel (kexec).
func (in *Init) chain(ctx context.Context, spec bootspec.Spec, env map[string]string) error {
	u := spec.URL
	s, err := openStream(ctx, u, in.agent())
	if err != nil {
		return err
	}
	if kimage.Kind(s.head) == kimage.Squashfs {
		return in.ramRoot(ctx, u, spec.Image, s)
	}
	if spec.Image.Set {
		s.body.Close()
		return fmt.Errorf("%s is not a root image (no squashfs magic in its first bytes, %q): point option 224 at a NAME.squashfs from ramboot rootfs, or drop the #%s", redact(u), printable(s.head, 16), spec.Image)
	}
	limit := fetchLimit()
	if s.size > limit {
		s.body.Close()
		return fmt.Errorf("%s: %d MB is more than this node's memory allows for a script or kernel (%d MB)", u, s.size>>20, limit>>20)
	}
	body, err := io.ReadAll(io.LimitReader(s.rest(), limit+1))
	s.body.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", u, s.explain(err))
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("%s: more than %d MB, what this node's memory allows for a script or kernel", u, limit>>20)
	}
	if s.size >= 0 && int64(len(body)) != s.size {
		return fmt.Errorf("%s: %w: got %d of %d bytes", u, ipxe.ErrTruncated, len(body), s.size)
	}
	f := newFetcher()
	var img *kexec.Image
	if ipxe.IsScript(body) {
		in.stage("224: running iPXE script %s (%d bytes)", u, len(body))
		img, err = ipxe.Run(ctx, body, u, env, f, in.Out)
		if err != nil {
			return err
		}
	} else {
		img = &kexec.Image{Kernel: body, Source: u.String()}
	}
	return in.kexec(img)
}

// agent is the init's HTTP User-Agent, with the MAC of its lease.
func (in *Init) agent() string {
	a := "ramboot-init/" + in.Info.Version
	if l := in.lease.Load(); l != nil {
		a += " (mac=" + l.MAC.String() + ")"
	}
	return a
}

// redact is u without its fragment (the digest is long and said elsewhere).
func redact(u *url.URL) string {
	c := *u
	c.Fragment = ""
	return c.String()
}

// printable shows up to n bytes of b with non-printing bytes escaped.
func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// kexec boots img: it loads it (kexec.Load checks the kernel first),
// passes the point of no return and reboots into it. It returns only on
// failure.
func (in *Init) kexec(img *kexec.Image) error {
	if err := kexec.Load(img, in.stage); err != nil {
		return err
	}
	if err := in.commit(); err != nil {
		return err
	}
	in.stage("kexec: loaded; booting %s", img.Source)
	in.reportLast(report.Kexec, img.Source)
	unix.Sync()
	return kexec.Reboot()
}

func (in *Init) nfsRoot(n bootspec.NFSSpec) error {
	host := n.Server
	ips, err := net.LookupIP(strings.Trim(host, "[]"))
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("cannot resolve NFS server %q: %v", host, err)
	}
	data := n.MountData() + ",addr=" + ips[0].String()
	if n.Version == "3" && !strings.Contains(data, "lock") {
		data += ",nolock" // no rpc.statd in RAM
	}
	newRoot := "/newroot"
	os.MkdirAll(newRoot, 0o755)
	target := newRoot
	flags := uintptr(0)
	if n.Overlay {
		target = "/run/ramboot/lower"
		flags = unix.MS_RDONLY
		os.MkdirAll(target, 0o755)
	}
	in.stage("nfs: mount %s on %s (%s)", n.Source(), target, data)
	if err := unix.Mount(n.Source(), target, "nfs", flags, data); err != nil {
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
		steps.unmount(target)
		if err := overlayRoot(&steps, target, newRoot, ""); err != nil {
			steps.run()
			return err
		}
		in.stage("nfs: read-only export under a RAM overlay on %s", newRoot)
	} else {
		steps.unmount(newRoot)
	}
	if err := in.switchRoot(newRoot, n.Init); err != nil {
		steps.run()
		return fmt.Errorf("%w (pass init=PATH in option 224)", err)
	}
	return nil
}
