//go:build linux

package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/node/ipxe"
)

// staleAfter is how long a download may go without a byte before it is
// given up as a server gone.
const staleAfter = 30 * time.Second

// headSize is how much of a download is read to tell what it is.
const headSize = 4096

// stream is a download opened but not yet read past its head.
type stream struct {
	head []byte
	body io.ReadCloser
	size int64 // -1 if the server did not say
	// stalled is set when the watchdog gave up on the server.
	stalled *atomic.Bool
}

// explain says why a read failed, in the node operator's words.
func (s *stream) explain(err error) error {
	if s.stalled != nil && s.stalled.Load() {
		return fmt.Errorf("no data for %s: %w", staleAfter, err)
	}
	return err
}

// rest is the whole download, head included.
func (s *stream) rest() io.Reader { return io.MultiReader(bytes.NewReader(s.head), s.body) }

// openStream starts a download of u (http, https, tftp or file) and reads
// its first headSize bytes, with b.Agent as the HTTP User-Agent. Errors
// say what failed: refused, not found, no such host, timed out.
func (b *Boot) openStream(ctx context.Context, u *url.URL) (*stream, error) {
	streamClient, tftpScheme := b.clients()
	agent := b.Agent
	src := *u
	src.Fragment = ""
	s := &stream{size: -1}
	switch u.Scheme {
	case "http", "https":
		ctx, cancel := context.WithCancel(ctx)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.String(), nil)
		if err != nil {
			cancel()
			return nil, err
		}
		if agent != "" {
			req.Header.Set("User-Agent", agent)
		}
		resp, err := streamClient.Do(req)
		if err != nil {
			cancel()
			return nil, explainNet(src.String(), err)
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			resp.Body.Close()
			cancel()
			return nil, &ipxe.HTTPError{URL: src.String(), StatusCode: resp.StatusCode, Status: resp.Status}
		}
		s.size = resp.ContentLength
		s.stalled = new(atomic.Bool)
		s.body = newWatchdog(resp.Body, cancel, s.stalled)
	case "tftp":
		r, err := tftpScheme.FetchWithoutCache(ctx, &src)
		if err != nil {
			return nil, fmt.Errorf("tftp %s: %w", src.String(), err)
		}
		if sz, ok := r.(interface{ Size() (int64, error) }); ok {
			if n, err := sz.Size(); err == nil && n > 0 {
				s.size = n
			}
		}
		s.body = io.NopCloser(r)
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, err
		}
		if st, err := f.Stat(); err == nil {
			s.size = st.Size()
		}
		s.body = f
	default:
		return nil, fmt.Errorf("%s: unsupported scheme %q", src.String(), u.Scheme)
	}
	head := make([]byte, headSize)
	n, err := io.ReadFull(s.body, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		s.body.Close()
		return nil, fmt.Errorf("%s: %w", src.String(), s.explain(err))
	}
	s.head = head[:n]
	return s, nil
}

// explainNet names the usual network failures.
func explainNet(u string, err error) error {
	var hint string
	var dns *net.DNSError
	switch {
	case errors.Is(err, unix.ECONNREFUSED):
		hint = "connection refused: is the server running, on this port?"
	case errors.As(err, &dns):
		hint = "no such host: use the server's address"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		hint = "timed out: is the server reachable from this network?"
	}
	if hint != "" {
		return fmt.Errorf("GET %s: %s (%v)", u, hint, err)
	}
	return fmt.Errorf("GET %s: %w", u, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// watchdog cancels a download that goes staleAfter without a byte.
type watchdog struct {
	io.ReadCloser
	timer *time.Timer
}

func newWatchdog(rc io.ReadCloser, cancel context.CancelFunc, stalled *atomic.Bool) *watchdog {
	w := &watchdog{ReadCloser: rc}
	w.timer = time.AfterFunc(staleAfter, func() {
		stalled.Store(true)
		cancel()
	})
	return w
}

func (w *watchdog) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	if n > 0 {
		w.timer.Reset(staleAfter)
	}
	return n, err
}

func (w *watchdog) Close() error {
	w.timer.Stop()
	return w.ReadCloser.Close()
}
