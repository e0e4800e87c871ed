//go:build linux

package action

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"time"

	"github.com/u-root/u-root/pkg/curl"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/kernel/kimage"
	"github.com/ramboot/ramboot/node/ipxe"
	"github.com/ramboot/ramboot/node/kexec"
)

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
func (b *Boot) chain(ctx context.Context, spec bootspec.Spec) error {
	u := spec.URL
	s, err := b.openStream(ctx, u)
	if err != nil {
		return err
	}
	if kimage.Kind(s.head) == kimage.Squashfs {
		return b.ramRoot(ctx, u, spec.Image, s)
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
		b.Env.Stage("224: running iPXE script %s (%d bytes)", u, len(body))
		img, err = ipxe.Run(ctx, body, u, b.Vars, f, b.Out)
		if err != nil {
			return err
		}
	} else {
		img = &kexec.Image{Kernel: body, Source: u.String()}
	}
	return b.kexec(img)
}

// kexec checks img's kernel against this machine (unpacking a gzipped
// one) and hands it to the environment, which boots it past the point
// of no return. It returns only on failure: a kernel of the wrong
// architecture never reaches Env.Kexec.
func (b *Boot) kexec(img *kexec.Image) error {
	k, err := kexec.Kernel(img.Kernel, runtime.GOARCH)
	if err != nil {
		return err
	}
	img.Kernel = k
	return b.Env.Kexec(img)
}
