package ipxe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// DefaultMaxBytes is HTTPFetcher's size limit when MaxBytes is not set.
const DefaultMaxBytes = 512 << 20

// HTTPError is returned by HTTPFetcher for non-2xx responses.
type HTTPError struct {
	URL        string
	StatusCode int
	Status     string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("GET %s: %s", e.URL, e.Status) }

// ErrTooLarge is wrapped by HTTPFetcher when a body exceeds MaxBytes.
var ErrTooLarge = errors.New("download too large")

// ErrTruncated is wrapped by HTTPFetcher when a body is shorter than its
// Content-Length.
var ErrTruncated = errors.New("download truncated")

// HTTPFetcher fetches http and https URLs into memory.
type HTTPFetcher struct {
	// Client is used for requests; nil means http.DefaultClient.
	Client *http.Client
	// MaxBytes limits the size of a download; <= 0 means DefaultMaxBytes.
	MaxBytes int64
}

// Fetch GETs rawURL. It fails on non-2xx status (*HTTPError), bodies
// larger than MaxBytes (ErrTooLarge) and bodies that do not match their
// Content-Length (ErrTruncated).
func (h HTTPFetcher) Fetch(ctx context.Context, rawURL string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("GET %s: unsupported scheme %q", rawURL, u.Scheme)
	}
	client, limit := h.Client, h.MaxBytes
	if client == nil {
		client = http.DefaultClient
	}
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &HTTPError{URL: rawURL, StatusCode: resp.StatusCode, Status: resp.Status}
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("GET %s: %w: Content-Length %d exceeds limit %d", rawURL, ErrTooLarge, resp.ContentLength, limit)
	}
	capHint := int64(0)
	if resp.ContentLength > 0 {
		capHint = resp.ContentLength
	}
	buf := make([]byte, 0, capHint)
	w := &limitedBuffer{b: buf, limit: limit}
	n, err := io.Copy(w, resp.Body)
	switch {
	case errors.Is(err, ErrTooLarge):
		return nil, fmt.Errorf("GET %s: %w: more than %d bytes", rawURL, ErrTooLarge, limit)
	case err != nil && resp.ContentLength >= 0:
		return nil, fmt.Errorf("GET %s: %w: got %d of %d bytes: %v", rawURL, ErrTruncated, n, resp.ContentLength, err)
	case err != nil:
		return nil, fmt.Errorf("GET %s: after %d bytes: %w", rawURL, n, err)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return nil, fmt.Errorf("GET %s: %w: got %d of %d bytes", rawURL, ErrTruncated, n, resp.ContentLength)
	}
	return w.b, nil
}

type limitedBuffer struct {
	b     []byte
	limit int64
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if int64(len(l.b))+int64(len(p)) > l.limit {
		return 0, ErrTooLarge
	}
	l.b = append(l.b, p...)
	return len(p), nil
}
