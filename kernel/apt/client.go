package apt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/ramboot/ramboot/internal/atomicfile"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// ErrNotFound is wrapped by the errors of Lookup and FetchPackage when the
// package, the version, or the component/architecture index does not exist.
var ErrNotFound = errors.New("not found")

// Client downloads and verifies files from one Debian mirror. The zero value
// is usable once Mirror is set. A Client may be used by several goroutines.
type Client struct {
	// Mirror is the base URL of the archive, e.g. "http://mirror.example/debian"
	// (the directory holding dists/ and pool/). See MirrorFromSources.
	Mirror string
	// Keyring holds the keys trusted to sign InRelease files. If nil, the
	// default of LoadKeyring() is used.
	Keyring openpgp.EntityList
	// CacheDir is where downloads are kept. If empty, it is
	// $XDG_CACHE_HOME/ramboot or ~/.cache/ramboot. The client uses the
	// "apt" subdirectory.
	CacheDir string
	// Offline forbids all network access: only cached files are used (and
	// verified again). Mirror may then be empty if the cache holds the
	// suite from a single mirror.
	Offline bool
	// HTTP is the HTTP client to use; nil means http.DefaultClient. Use ctx
	// for timeouts.
	HTTP *http.Client
	// Progress, if set, receives download progress: a progress bar when it
	// is a terminal, else one line when a download starts and one when it
	// ends. nil means silent.
	Progress io.Writer
	// Now returns the current time, for Valid-Until and key expiry checks;
	// nil means time.Now.
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) keyring() (openpgp.EntityList, error) {
	if c.Keyring != nil {
		return c.Keyring, nil
	}
	return LoadKeyring()
}

// mirror returns the validated mirror URL without a trailing slash.
func (c *Client) mirror() (string, error) {
	m := strings.TrimRight(strings.TrimSpace(c.Mirror), "/")
	if m == "" {
		return "", errors.New("no Debian mirror set: pass --apt-mirror URL")
	}
	u, err := url.Parse(m)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("bad Debian mirror URL %q: want http(s)://host/path", c.Mirror)
	}
	return m, nil
}

// cacheDir returns the directory of the client's cache.
func (c *Client) cacheDir() (string, error) {
	if c.CacheDir != "" {
		return filepath.Join(c.CacheDir, "apt"), nil
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory (set XDG_CACHE_HOME or HOME): %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "ramboot", "apt"), nil
}

// mirrorKey turns a mirror URL into a directory name.
func mirrorKey(mirror string) string {
	u, err := url.Parse(mirror)
	s := mirror
	if err == nil {
		s = u.Host + u.Path
	}
	return strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// httpStatusError is an unexpected HTTP response status.
type httpStatusError struct {
	URL    string
	Status string
	Code   int
}

func (e *httpStatusError) Error() string { return fmt.Sprintf("GET %s: %s", e.URL, e.Status) }

func isHTTPNotFound(err error) bool {
	var he *httpStatusError
	return errors.As(err, &he) && (he.Code == http.StatusNotFound || he.Code == http.StatusGone)
}

// get downloads rawURL into w. size is the expected size (-1 if unknown);
// at most limit bytes are accepted. It returns the number of bytes written.
func (c *Client) get(ctx context.Context, rawURL, label string, size, limit int64, w io.Writer) (int64, error) {
	if c.Offline {
		// Callers check Offline first; this is a safety net.
		return 0, fmt.Errorf("GET %s: refusing network access in offline mode", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, err // already names the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, &httpStatusError{URL: rawURL, Status: resp.Status, Code: resp.StatusCode}
	}
	if size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != size {
		return 0, fmt.Errorf("GET %s: server sends %d bytes, expected %d: the mirror is out of sync or the file was tampered with", rawURL, resp.ContentLength, size)
	}
	total := size
	if total < 0 {
		total = resp.ContentLength
	}
	p := c.startProgress(label, total)
	n, err := io.Copy(io.MultiWriter(w, p), io.LimitReader(resp.Body, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("more than %d bytes", limit)
	}
	p.finish(err)
	if err != nil {
		return n, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	return n, nil
}

// checkedFile makes sure dest holds the file of the given size and SHA-256:
// a cached copy is hashed and used if it matches; otherwise the file is
// downloaded from the first of urls that exists (later URLs are tried only
// when the server answers 404), written to a temporary file, verified and
// renamed to dest. what describes the file in error messages, label in
// progress output.
func (c *Client) checkedFile(ctx context.Context, what, label, dest string, urls []string, size int64, sum string) error {
	ok, err := fileMatches(dest, size, sum)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if c.Offline {
		return fmt.Errorf("offline: %s is not in the cache (%s): run once without --offline", what, dest)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("creating cache: %w", err)
	}
	for i, u := range urls {
		err = c.download(ctx, what, label, u, dest, size, sum)
		if err != nil && isHTTPNotFound(err) && i+1 < len(urls) {
			continue
		}
		break
	}
	return err
}

func (c *Client) download(ctx context.Context, what, label, rawURL, dest string, size int64, sum string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".download-*")
	if err != nil {
		return fmt.Errorf("creating cache file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	n, err := c.get(ctx, rawURL, label, size, size, io.MultiWriter(tmp, h))
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("writing %s: %w", tmp.Name(), cerr)
	}
	if err != nil {
		return fmt.Errorf("downloading %s: %w", what, err)
	}
	if n != size {
		return fmt.Errorf("%s: size mismatch: got %d bytes from %s, expected %d: the mirror is out of sync or the file was tampered with; retry later or use another --apt-mirror", what, n, rawURL, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%s: SHA-256 mismatch: got %s from %s, expected %s: the mirror is out of sync or the file was tampered with; retry later or use another --apt-mirror", what, got, rawURL, sum)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("storing %s in cache: %w", what, err)
	}
	return nil
}

// fileMatches reports whether path exists with the given size and SHA-256.
// A file that exists but does not match is removed.
func fileMatches(path string, size int64, sum string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading cache: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, size+1))
	if err != nil {
		return false, fmt.Errorf("reading cache: %w", err)
	}
	if n == size && hex.EncodeToString(h.Sum(nil)) == sum {
		return true, nil
	}
	f.Close()
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("removing corrupt cache file: %w", err)
	}
	return false, nil
}

// writeFileAtomic writes data to path via a temporary file and a rename,
// unsynced: the cache can be fetched again.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, atomicfile.Options{NoSync: true})
}

func urlBase(rawURL string) string {
	if i := strings.LastIndexByte(rawURL, '/'); i >= 0 && i+1 < len(rawURL) {
		return rawURL[i+1:]
	}
	return rawURL
}

// validPath reports whether p is a relative slash-separated path without
// empty, "." or ".." elements, made of characters Debian uses in suite,
// component and file names.
func validPath(p string) bool {
	if p == "" {
		return false
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
		for i := 0; i < len(el); i++ {
			c := el[i]
			if !(isAlpha(c) || isDigit(c) || strings.IndexByte(".+-_~:%=@,", c) >= 0) {
				return false
			}
		}
	}
	return true
}

// escapePath escapes each element of a slash-separated path for a URL.
func escapePath(p string) string {
	els := strings.Split(p, "/")
	for i, el := range els {
		els[i] = url.PathEscape(el)
	}
	return strings.Join(els, "/")
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
