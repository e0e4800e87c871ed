//go:build linux

package action

// The RAM root action: option 224 names a root image (a squashfs, found by
// its magic) and the node runs it from memory, as dracut's rd.live.ram and
// live-boot's fetch= do. The image is streamed into a tmpfs sized for it
// while its SHA-256 is computed (one pass), checked, mounted read-only
// through a loop device under a tmpfs overlay, and switch_root'ed into. The
// node needs neither the server nor the network afterwards.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/mount/loop"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/kernel/kimage"
)

// ramReserve is the memory left to the new OS on top of the image: systemd,
// udev and sshd start in less than this.
const ramReserve = 128 << 20

// Paths of the RAM root; under /run, so the new OS sees them (as dracut's
// /run/initramfs) once /run is moved into it.
const (
	imageDir  = "/run/ramboot/image"
	imageFile = imageDir + "/root.squashfs"
	lowerDir  = "/run/ramboot/lower"
	newRoot   = "/newroot"
)

// memInfo reads MemTotal and MemAvailable from /proc/meminfo, in bytes.
func memInfo() (total, avail int64, err error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "MemTotal":
			total = n << 10
		case "MemAvailable":
			avail = n << 10
		}
	}
	if avail == 0 {
		return total, avail, errors.New("/proc/meminfo has no MemAvailable")
	}
	return total, avail, sc.Err()
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// ramRoot runs the root image whose first bytes are head and the rest body
// (size bytes in all, -1 if the server did not say). It returns only on a
// failure before the point of no return, with everything it set up taken
// down again.
func (b *Boot) ramRoot(ctx context.Context, u *url.URL, opts bootspec.ImageOpts, s *stream) (err error) {
	defer s.body.Close() // on every path: a refused image leaves no connection open
	var steps undo
	defer func() {
		if err != nil {
			if uerr := steps.run(); uerr != nil {
				b.Env.Stage("rootfs: cleaning up: %v", uerr)
			}
		}
	}()
	src := *u
	src.Fragment = ""
	sb, perr := kimage.ParseSquashfs(s.head)
	if perr != nil {
		return fmt.Errorf("%s: %w", src.String(), perr)
	}
	if sb.Compression != "zstd" && sb.Compression != "xz" && sb.Compression != "gzip" && sb.Compression != "lz4" && sb.Compression != "lzo" {
		return fmt.Errorf("%s: a squashfs compressed with %s, which this kernel cannot read: rebuild it with zstd (ramboot rootfs does)", src.String(), sb.Compression)
	}

	// The digest to check, before a byte of the image is stored.
	want := opts.SHA256
	digestFrom := "the URL's #sha256="
	if want == "" && !opts.NoDigest {
		sumURL := src
		sumURL.Path += ".sha256"
		sumURL.RawPath = ""
		want, err = b.fetchDigest(ctx, &sumURL)
		if err != nil {
			return fmt.Errorf("no digest to check %s against: %v; add #sha256=HEX to option 224 (or #sha256=none to run it unchecked)", src.String(), err)
		}
		digestFrom = sumURL.String()
	}

	// Room for it, with a reserve for the OS it holds.
	total, avail, merr := memInfo()
	if merr != nil {
		return fmt.Errorf("memory: %w", merr)
	}
	if s.size > 0 && s.size < sb.BytesUsed {
		return fmt.Errorf("%s: truncated on the server: the file is %d bytes, its squashfs superblock says %d", src.String(), s.size, sb.BytesUsed)
	}
	room := avail - ramReserve
	need := s.size
	if need < 0 {
		need = sb.BytesUsed
	}
	if need > room {
		return fmt.Errorf("%s is too big for this node's RAM: %s, but only %s of %s is available after a %s reserve for the OS: use a smaller image or a node with more memory",
			src.String(), mb(need), mb(max(room, 0)), mb(total), mb(ramReserve))
	}
	b.Env.Stage("rootfs: %s: squashfs (%s), %s; %s of RAM available; digest from %s", src.String(), sb.Compression, sizeText(s.size), mb(avail), digestFrom)

	// A tmpfs just big enough: a server sending more than it said cannot
	// fill the node's memory.
	if err := os.MkdirAll(b.path(imageDir), 0o700); err != nil {
		return err
	}
	limit := room
	if s.size > 0 {
		limit = s.size
	}
	tmpfsSize := (limit + 2<<20) &^ 4095
	if err := b.sys().Mount("tmpfs", b.path(imageDir), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=0700,size=%d", tmpfsSize)); err != nil {
		return fmt.Errorf("tmpfs for the image: %w", err)
	}
	steps.unmount(b.sys(), b.path(imageDir))

	got, n, err := b.download(s, limit)
	if err != nil {
		return fmt.Errorf("%s: %w", src.String(), err)
	}
	if n < sb.BytesUsed {
		return fmt.Errorf("%s: truncated: got %d bytes, its squashfs superblock says %d", src.String(), n, sb.BytesUsed)
	}
	if !opts.NoDigest && got != want {
		return fmt.Errorf("%s: SHA-256 mismatch: got %s, %s says %s: the image changed or was damaged in transit; rebuild and republish the .sha256, or fix option 224",
			src.String(), got, digestFrom, want)
	}
	if opts.NoDigest {
		b.Env.Stage("rootfs: sha256 %s (not checked: #sha256=none)", got)
	} else {
		b.Env.Stage("rootfs: sha256 %s matches", got)
	}
	b.Env.Progress(report.Downloaded, n, n)

	// Mount it: loop (read-only), squashfs, then the RAM overlay.
	b.waitModules()
	dev, err := b.sys().AttachLoop(b.path(imageFile))
	if err != nil {
		return err
	}
	steps.push(func() error { return b.sys().DetachLoop(dev) })
	if err := os.MkdirAll(b.path(lowerDir), 0o755); err != nil {
		return err
	}
	if err := b.sys().Mount(dev, b.path(lowerDir), "squashfs", unix.MS_RDONLY, ""); err != nil {
		hint := ""
		if errors.Is(err, unix.ENODEV) {
			hint = " (the squashfs module is not loaded: add squashfs to the board's modules)"
		}
		return fmt.Errorf("mount the image (%s on %s): %w%s", dev, b.path(lowerDir), err, hint)
	}
	steps.unmount(b.sys(), b.path(lowerDir))
	if err := b.overlayRoot(&steps, b.path(lowerDir), b.path(newRoot), opts.Overlay); err != nil {
		return err
	}
	b.Env.Stage("rootfs: %s read-only under a RAM overlay (%s) on %s", b.path(imageFile), overlayText(opts.Overlay), b.path(newRoot))
	init := opts.Init
	if init == "" {
		init = bootspec.DefaultInit
	}
	if err := b.Env.SwitchRoot(b.path(newRoot), init); err != nil {
		return fmt.Errorf("%s: %w (a different init: #init=/path in option 224)", src.String(), err)
	}
	return nil
}

func sizeText(n int64) string {
	if n < 0 {
		return "size not given by the server"
	}
	return mb(n)
}

func overlayText(size string) string {
	if size == "" {
		return "up to half the RAM"
	}
	return size
}

// download streams s into imageFile while hashing it, printing progress,
// and returns the digest and length. A server that stalls for staleAfter,
// closes early or sends more than limit is an error naming which.
func (b *Boot) download(s *stream, limit int64) (string, int64, error) {
	f, err := os.OpenFile(b.path(imageFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o400)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	p := &progress{b: b, total: s.size, start: time.Now(), next: time.Now().Add(2 * time.Second)}
	n, err := pipeline(io.LimitReader(s.rest(), limit+1), h, io.MultiWriter(f, p))
	cerr := f.Close()
	s.body.Close()
	switch {
	case err != nil && errors.Is(err, unix.ENOSPC):
		return "", n, fmt.Errorf("out of room after %s (the tmpfs holds %s): the server sent more than it said", mb(n), mb(limit))
	case err != nil && s.size > 0:
		return "", n, fmt.Errorf("download broke off at %s of %s (server gone or network down?): %v", mb(n), mb(s.size), s.explain(err))
	case err != nil:
		return "", n, fmt.Errorf("download broke off after %s (server gone or network down?): %v", mb(n), s.explain(err))
	case cerr != nil:
		return "", n, cerr
	case n > limit:
		if s.size > 0 {
			return "", n, fmt.Errorf("the server sent more than the %d bytes it announced", s.size)
		}
		return "", n, fmt.Errorf("too big for this node's RAM: more than %s arrived", mb(limit))
	case s.size > 0 && n != s.size:
		return "", n, fmt.Errorf("truncated: got %d of %d bytes (server gone mid-download?)", n, s.size)
	}
	el := time.Since(p.start).Seconds()
	b.Env.Stage("rootfs: %s in %.1fs (%.1f MB/s)", mb(n), el, float64(n)/1e6/max(el, 0.001))
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Pipeline sizes: chunks of pipeChunk bytes, pipeChunks of them in
// flight (the memory it takes: 4 MB).
const (
	pipeChunk  = 512 << 10
	pipeChunks = 8
)

// pipeline copies r to hash and to w in three stages that overlap: one
// goroutine receives (the network's system calls), one hashes, and this
// one writes, each on its own chunk, so that on a node with two cores the
// SHA-256 and the write into the tmpfs no longer wait for the network,
// nor it for them. It returns the bytes read and the first error: a
// read's (the network's), else a write's.
func pipeline(r io.Reader, hash io.Writer, w io.Writer) (int64, error) {
	type chunk struct {
		buf []byte
		n   int
	}
	free := make(chan []byte, pipeChunks)
	for range pipeChunks {
		free <- make([]byte, pipeChunk)
	}
	read := make(chan chunk, pipeChunks)
	hashed := make(chan chunk, pipeChunks)
	done := make(chan struct{}) // closed when the writer stops early
	var rerr error
	go func() { // receive
		defer close(read)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				return
			}
			// Fill the chunk; io.EOF alone is the end (a body cut short
			// says io.ErrUnexpectedEOF, an error).
			n := 0
			var err error
			for n < len(buf) && err == nil {
				var k int
				k, err = r.Read(buf[n:])
				n += k
			}
			if n > 0 {
				read <- chunk{buf, n}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				rerr = err
				return
			}
		}
	}()
	go func() { // hash
		defer close(hashed)
		for c := range read {
			hash.Write(c.buf[:c.n])
			hashed <- c
		}
	}()
	var total int64
	var werr error
	for c := range hashed { // write
		if werr == nil {
			var n int
			n, werr = w.Write(c.buf[:c.n])
			total += int64(n)
			if werr != nil {
				close(done)
			}
		}
		free <- c.buf
	}
	if rerr != nil { // the receiver's; set before it closed read
		return total, rerr
	}
	return total, werr
}

// progress prints a line every few seconds while an image downloads.
type progress struct {
	b     *Boot
	total int64
	n     int64
	start time.Time
	next  time.Time
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if now := time.Now(); now.After(p.next) {
		p.next = now.Add(2 * time.Second)
		rate := float64(p.n) / 1e6 / now.Sub(p.start).Seconds()
		p.b.Env.Progress(report.Download, p.n, p.total)
		if p.total > 0 {
			p.b.Env.Stage("rootfs: %s of %s (%d%%), %.1f MB/s", mb(p.n), mb(p.total), p.n*100/p.total, rate)
		} else {
			p.b.Env.Stage("rootfs: %s, %.1f MB/s", mb(p.n), rate)
		}
	}
	return len(b), nil
}

// fetchDigest reads the first 64-hex-digit word of a .sha256 file (the
// sha256sum format: "HEX  NAME").
func (b *Boot) fetchDigest(ctx context.Context, u *url.URL) (string, error) {
	s, err := b.openStream(ctx, u)
	if err != nil {
		return "", err
	}
	defer s.body.Close()
	data, err := io.ReadAll(io.LimitReader(s.rest(), 4096))
	if err != nil {
		return "", fmt.Errorf("%s: %w", u, err)
	}
	f := strings.Fields(string(data))
	if len(f) == 0 || len(f[0]) != 64 || strings.Trim(strings.ToLower(f[0]), "0123456789abcdef") != "" {
		return "", fmt.Errorf("%s does not start with a SHA-256 (64 hex digits)", u)
	}
	return strings.ToLower(f[0]), nil
}

// attachLoop puts file on a free loop device, read-only.
func attachLoop(file string) (string, error) {
	dev, err := loop.FindDevice()
	if err != nil {
		return "", fmt.Errorf("no loop device (%w): the loop module is not loaded (add loop to the board's modules)", err)
	}
	ff, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer ff.Close()
	lf, err := os.Open(dev)
	if err != nil {
		return "", fmt.Errorf("loop device: %w", err)
	}
	defer lf.Close()
	if err := loop.SetFD(int(lf.Fd()), int(ff.Fd())); err != nil {
		return "", fmt.Errorf("loop %s: %w", dev, err)
	}
	return dev, nil
}
