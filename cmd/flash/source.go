//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ulikunitz/xz"
)

type format string

const (
	formatRaw  format = "raw"
	formatGzip format = "gzip"
	formatXz   format = "xz"
	formatZstd format = "zstd"
)

// detect tells the format of an image from its first bytes. Formats flash
// cannot write are errors that say what to do instead.
func detect(b []byte) (format, error) {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return formatGzip, nil
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return formatXz, nil
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return formatZstd, nil
	case bytes.HasPrefix(b, []byte("BZh")) && len(b) > 3 && b[3] >= '1' && b[3] <= '9':
		return "", errors.New("the image is bzip2-compressed, which flash does not read: recompress it with xz, zstd or gzip")
	case bytes.HasPrefix(b, []byte{0x04, 0x22, 0x4d, 0x18}):
		return "", errors.New("the image is lz4-compressed, which flash does not read: recompress it with zstd, xz or gzip")
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return "", errors.New("the image is a zip archive: flash writes one image, not an archive; unzip it elsewhere and serve the .img (or an .img.xz/.zst/.gz)")
	case bytes.HasPrefix(b, []byte("7z\xbc\xaf\x27\x1c")):
		return "", errors.New("the image is a 7-Zip archive: extract it elsewhere and serve the .img (or an .img.xz/.zst/.gz)")
	case bytes.HasPrefix(b, []byte("QFI\xfb")):
		return "", errors.New("the image is qcow2: convert it with `qemu-img convert -O raw in.qcow2 out.img` first")
	case looksLikeHTML(b):
		return "", errors.New("this is an HTML page, not a disk image: check the URL (a download link, not the page that links to it)")
	}
	return formatRaw, nil
}

func looksLikeHTML(b []byte) bool {
	s := strings.ToLower(string(bytes.TrimLeft(b, " \t\r\n\ufeff")))
	return strings.HasPrefix(s, "<!doctype html") || strings.HasPrefix(s, "<html")
}

// decompressor wraps r according to f; the returned func releases it.
func decompressor(f format, r io.Reader) (io.Reader, func(), error) {
	switch f {
	case formatGzip:
		z, err := pgzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, func() { z.Close() }, nil
	case formatXz:
		z, err := xz.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, func() {}, nil
	case formatZstd:
		z, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	}
	return r, func() {}, nil
}

// source is the image as served: body or file, then metered, hashed and
// buffered. br is where the decompressor reads.
type source struct {
	name   string
	isHTTP bool
	format format
	size   int64 // as served; -1 if unknown
	rc     io.ReadCloser
	meter  *meter
	br     *bufio.Reader
	abort  func() // stop a blocked read (cancels the download)
	cancel context.CancelCauseFunc
	stall  time.Duration
	// stalled is set when the stall timer cancelled the download.
	stalled atomic.Bool
}

func (s *source) Close() error {
	s.cancel(nil)
	return s.rc.Close()
}

var errStalled = errors.New("download stalled")

func isURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

func newClient() *http.Client {
	return &http.Client{
		// No overall timeout: an image takes minutes. Connecting and the
		// response headers have timeouts; the body has a stall timeout.
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ForceAttemptHTTP2:     true,
			// Get the bytes as served, so that the checksum is of them.
			DisableCompression: true,
		},
	}
}

// openRaw opens name (URL or file) and returns the stream, its size (-1 if
// unknown), and the cancel func of the request context.
func (e *env) openRaw(ctx context.Context, client *http.Client, name string) (io.ReadCloser, int64, context.CancelCauseFunc, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	if !isURL(name) {
		if strings.Contains(name, "://") {
			cancel(nil)
			return nil, 0, nil, fmt.Errorf("%s: only http:// and https:// URLs, or local files, are supported", name)
		}
		f, err := os.Open(name)
		if err != nil {
			cancel(nil)
			if errors.Is(err, os.ErrNotExist) {
				return nil, 0, nil, fmt.Errorf("%s: no such file (a URL must start with http:// or https://)", name)
			}
			return nil, 0, nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			cancel(nil)
			return nil, 0, nil, err
		}
		if fi.IsDir() {
			f.Close()
			cancel(nil)
			return nil, 0, nil, fmt.Errorf("%s is a directory, not an image file", name)
		}
		size := int64(-1)
		if fi.Mode().IsRegular() {
			size = fi.Size()
		}
		return f, size, cancel, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, name, nil)
	if err != nil {
		cancel(nil)
		return nil, 0, nil, fmt.Errorf("bad URL %s: %v", name, err)
	}
	req.Header.Set("User-Agent", "ramboot-flash")
	resp, err := client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, 0, nil, explainHTTP(name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body.Close()
		cancel(nil)
		err := fmt.Errorf("GET %s: server said %s", name, resp.Status)
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return nil, 0, nil, hint(err, "check the URL: the file is not on the server under that name")
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return nil, 0, nil, hint(err, "the server refuses access: check the URL and the server's permissions")
		case resp.StatusCode >= 500:
			return nil, 0, nil, hint(err, "the server failed: check its logs, or try again")
		}
		return nil, 0, nil, err
	}
	return resp.Body, resp.ContentLength, cancel, nil
}

// explainHTTP names the usual causes of a failed request.
func explainHTTP(u string, err error) error {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var dns *net.DNSError
	var he x509.HostnameError
	switch {
	case errors.As(err, &ua):
		return hint(fmt.Errorf("GET %s: the server's TLS certificate is not trusted: %v", u, err),
			"if the initramfs has no CA certificates, set SSL_CERT_FILE=/path/to/ca.pem, or use http:// with --sha256")
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return hint(fmt.Errorf("GET %s: TLS certificate expired or not yet valid: %v", u, err),
			fmt.Sprintf("this machine's clock says %s: set it (date -s 'YYYY-MM-DD hh:mm') or use http:// with --sha256",
				time.Now().UTC().Format("2006-01-02 15:04 MST")))
	case errors.As(err, &he):
		return hint(fmt.Errorf("GET %s: %v", u, err), "use the host name the certificate is for")
	case errors.As(err, &dns):
		return hint(fmt.Errorf("GET %s: cannot resolve %s", u, dns.Name),
			"check the network and /etc/resolv.conf, or use the server's IP address")
	case errors.Is(err, syscall.ECONNREFUSED):
		return hint(fmt.Errorf("GET %s: connection refused", u), "is the HTTP server running, on that port?")
	case errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH):
		return hint(fmt.Errorf("GET %s: %v", u, err), "no route to the server: is the network up (ip addr, ip route)?")
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted: nothing was written")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return hint(fmt.Errorf("GET %s: timed out: %v", u, err), "check the network and that the server is up")
	}
	return fmt.Errorf("GET %s: %v", u, err)
}

// openSource opens the image and detects its format.
func (e *env) openSource(ctx context.Context, client *http.Client, name string, hashing bool) (*source, error) {
	rc, size, cancel, err := e.openRaw(ctx, client, name)
	if err != nil {
		return nil, err
	}
	s := &source{name: name, isHTTP: isURL(name), size: size, rc: rc, cancel: cancel, stall: e.stall}
	var r io.Reader = rc
	s.abort = func() {}
	if s.isHTTP {
		r = newStallReader(rc, e.stall, func() { s.stalled.Store(true); cancel(errStalled) })
		s.abort = func() { cancel(context.Canceled) }
	}
	s.meter = &meter{r: r, size: size}
	if hashing {
		s.meter.h = sha256.New()
	}
	s.br = bufio.NewReaderSize(s.meter, 1<<20)
	head, err := s.br.Peek(16)
	if len(head) == 0 {
		s.Close()
		if err == nil || err == io.EOF {
			return nil, fmt.Errorf("%s: the image is empty", name)
		}
		return nil, s.explainRead(ctx, err, 0, "")
	}
	s.format, err = detect(head)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return s, nil
}

// explainRead turns an error from reading or decompressing the image into
// a message; written > 0 means the device holds part of the image.
func (s *source) explainRead(ctx context.Context, err error, written int64, device string) error {
	partial := ""
	if written > 0 {
		partial = fmt.Sprintf("; %s holds a partial image (%s written): flash it again", device, humanBytes(written))
	}
	got := s.meter.n.Load()
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted%s", partial)
	}
	if s.stalled.Load() {
		return hint(fmt.Errorf("%s: download stalled: no data for %s after %s%s", s.name, s.stall, humanBytes(got), partial),
			"check the network and the server, then try again")
	}
	if merr := s.meter.err; merr != nil {
		if errors.Is(merr, io.ErrUnexpectedEOF) && s.size >= 0 {
			return fmt.Errorf("%s: download truncated: got %s of %s bytes (the server closed the connection early)%s",
				s.name, commas(got), commas(s.size), partial)
		}
		return fmt.Errorf("reading %s: %v%s", s.name, merr, partial)
	}
	if s.size >= 0 && got < s.size {
		return fmt.Errorf("%s: truncated: got %s of %s bytes%s", s.name, commas(got), commas(s.size), partial)
	}
	if s.format != formatRaw {
		return hint(fmt.Errorf("%s: corrupt or truncated %s data: %v%s", s.name, s.format, err, partial),
			"download the image again; if it keeps failing, the file on the server is damaged")
	}
	return fmt.Errorf("reading %s: %v%s", s.name, err, partial)
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// meter counts (and optionally hashes) the bytes as served. It remembers
// the first read error other than EOF: that, not what the decompressor
// makes of it, is the cause to report.
type meter struct {
	r    io.Reader
	h    hash.Hash
	n    atomic.Int64
	size int64
	err  error
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		if m.h != nil {
			m.h.Write(p[:n])
		}
		m.n.Add(int64(n))
	}
	if err == io.EOF && m.size >= 0 && m.n.Load() < m.size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF && m.err == nil {
		m.err = err
	}
	return n, err
}

func (m *meter) sum() []byte {
	if m.h == nil {
		return nil
	}
	return m.h.Sum(nil)
}

// stallReader calls onStall if one Read blocks longer than d.
type stallReader struct {
	r io.Reader
	d time.Duration
	t *time.Timer
}

func newStallReader(r io.Reader, d time.Duration, onStall func()) *stallReader {
	t := time.AfterFunc(time.Hour, onStall)
	t.Stop()
	return &stallReader{r: r, d: d, t: t}
}

func (s *stallReader) Read(p []byte) (int, error) {
	s.t.Reset(s.d)
	n, err := s.r.Read(p)
	s.t.Stop()
	return n, err
}

// resolveSum returns the expected SHA-256: arg is 64 hex digits, or names
// a SHA256SUMS file (URL or path) with a line for image.
func (e *env) resolveSum(ctx context.Context, client *http.Client, arg, image string) ([]byte, error) {
	a := strings.TrimPrefix(strings.TrimSpace(arg), "sha256:")
	if len(a) == 64 {
		if b, err := hex.DecodeString(a); err == nil {
			return b, nil
		}
	}
	if !isURL(arg) {
		if _, err := os.Stat(arg); err != nil {
			return nil, fmt.Errorf("--sha256 %s: neither 64 hex digits nor a SHA256SUMS file (%v)", arg, err)
		}
	}
	rc, _, cancel, err := e.openRaw(ctx, client, arg)
	if err != nil {
		return nil, fmt.Errorf("--sha256: %w", err)
	}
	defer cancel(nil)
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("--sha256: reading %s: %v", arg, err)
	}
	return findSum(string(data), imageBase(image), arg)
}

// imageBase is the file name of an image URL or path.
func imageBase(image string) string {
	if isURL(image) {
		if u, err := url.Parse(image); err == nil {
			return path.Base(u.Path)
		}
	}
	return filepath.Base(image)
}

// findSum finds name in a SHA256SUMS text: GNU lines ("HEX  name",
// "HEX *name") or BSD lines ("SHA256 (name) = HEX").
func findSum(text, name, from string) ([]byte, error) {
	var names []string
	var only []byte
	lines := 0
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines++
		var sum, file string
		if rest, ok := strings.CutPrefix(line, "SHA256 ("); ok {
			i := strings.LastIndex(rest, ") = ")
			if i < 0 {
				continue
			}
			file, sum = rest[:i], rest[i+4:]
		} else {
			f := strings.Fields(line)
			sum = f[0]
			if len(f) > 1 {
				file = strings.TrimPrefix(strings.TrimSpace(line[len(f[0]):]), "*")
			}
		}
		b, err := hex.DecodeString(sum)
		if err != nil || len(b) != sha256.Size {
			continue
		}
		if file == "" {
			only = b
			continue
		}
		if file == name || path.Base(file) == name {
			return b, nil
		}
		names = append(names, file)
	}
	if only != nil && lines == 1 {
		return only, nil // a .sha256 file with just the digest
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("--sha256 %s: no SHA-256 checksums in it", from)
	}
	if len(names) > 8 {
		names = append(names[:8], "...")
	}
	return nil, fmt.Errorf("--sha256 %s has no line for %s (it lists: %s)", from, name, strings.Join(names, ", "))
}
