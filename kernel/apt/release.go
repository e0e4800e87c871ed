package apt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxInRelease bounds the size of an InRelease file (Debian's are < 1 MB).
const maxInRelease = 64 << 20

// Release is the verified content of a suite's InRelease file.
type Release struct {
	Mirror string // the mirror it came from
	Dist   string // the suite as requested: the directory under dists/

	Suite, Codename, Version string
	Date                     time.Time
	ValidUntil               time.Time // zero if the file has no Valid-Until
	Architectures            []string
	Components               []string
	AcquireByHash            bool

	// Files is the SHA256 list, keyed by path relative to dists/<Dist>/,
	// e.g. "main/binary-arm64/Packages.xz".
	Files map[string]FileInfo

	// Signer describes the key whose signature was accepted.
	Signer string
}

// FileInfo is the size and SHA-256 (lower-case hex) of a file.
type FileInfo struct {
	Size   int64
	SHA256 string
}

// Release downloads dists/<suite>/InRelease from the mirror, verifies its
// signature against the keyring and parses it. The verified file is cached;
// in offline mode the cached file is verified again and used.
//
// The Release is refused when it is not signed by a key of the keyring (or
// only by expired or revoked keys), when its Valid-Until date has passed, and
// when neither its Suite nor its Codename is the suite asked for.
func (c *Client) Release(ctx context.Context, suite string) (*Release, error) {
	if !validPath(suite) {
		return nil, fmt.Errorf("invalid suite name %q", suite)
	}
	dir, err := c.cacheDir()
	if err != nil {
		return nil, err
	}
	suiteKey := strings.ReplaceAll(suite, "/", "_")
	mirror, err := c.mirror()
	if err != nil && c.Offline && strings.TrimSpace(c.Mirror) == "" {
		mirror, err = cachedMirror(dir, suiteKey)
	}
	if err != nil {
		return nil, err
	}
	keyring, err := c.keyring()
	if err != nil {
		return nil, err
	}
	cached := filepath.Join(dir, "releases", mirrorKey(mirror), suiteKey, "InRelease")
	rawURL := mirror + "/dists/" + escapePath(suite) + "/InRelease"

	var data []byte
	if c.Offline {
		data, err = os.ReadFile(cached)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("offline: InRelease of suite %q from %s is not in the cache (%s): run once without --offline", suite, mirror, cached)
		}
		if err != nil {
			return nil, fmt.Errorf("reading cache: %w", err)
		}
	} else {
		var buf bytes.Buffer
		if _, err := c.get(ctx, rawURL, "InRelease ("+suite+")", -1, maxInRelease, &buf); err != nil {
			if isHTTPNotFound(err) {
				return nil, fmt.Errorf("suite %q not found on %s (%w): check the suite name (e.g. bookworm, trixie)", suite, mirror, err)
			}
			return nil, fmt.Errorf("fetching InRelease of suite %q: %w", suite, err)
		}
		data = buf.Bytes()
	}

	where := rawURL
	if c.Offline {
		where = cached + " (cached from " + rawURL + ")"
	}
	plain, signer, err := verifyClearsigned(data, keyring, c.now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: the mirror may be broken or compromised, or the keyring lacks the Debian archive key: use another --apt-mirror or pass an up-to-date debian-archive-keyring", where, err)
	}
	rel, err := parseRelease(plain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	rel.Mirror, rel.Dist, rel.Signer = mirror, suite, describeKey(signer)
	if rel.Suite != suite && rel.Codename != suite {
		return nil, fmt.Errorf("%s: is for suite %q (codename %q), not %q: the mirror is misconfigured or serving a substituted release", where, rel.Suite, rel.Codename, suite)
	}
	if now := c.now(); !rel.ValidUntil.IsZero() && now.After(rel.ValidUntil) {
		return nil, fmt.Errorf("%s: Release file expired on %s (Valid-Until; now is %s): the mirror is stale or the clock is wrong; use an up-to-date --apt-mirror", where, rel.ValidUntil.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123))
	}
	if !c.Offline {
		if err := writeFileAtomic(cached, data); err != nil {
			return nil, fmt.Errorf("caching InRelease: %w", err)
		}
		mf := filepath.Join(dir, "releases", mirrorKey(mirror), "mirror")
		if err := writeFileAtomic(mf, []byte(mirror+"\n")); err != nil {
			return nil, fmt.Errorf("caching InRelease: %w", err)
		}
	}
	return rel, nil
}

// cachedMirror finds the mirror whose InRelease of suite is cached, for
// offline use without a configured mirror. It fails unless there is exactly
// one.
func cachedMirror(dir, suiteKey string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(dir, "releases", "*", suiteKey, "InRelease"))
	var mirrors []string
	for _, m := range matches {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(m)), "mirror"))
		if err == nil {
			mirrors = append(mirrors, strings.TrimSpace(string(b)))
		}
	}
	switch len(mirrors) {
	case 1:
		return mirrors[0], nil
	case 0:
		return "", fmt.Errorf("offline: no InRelease of suite %q in the cache (%s) and no mirror set: run once without --offline", suiteKey, dir)
	}
	return "", fmt.Errorf("offline: suite %q is cached from several mirrors (%s): pass --apt-mirror URL", suiteKey, strings.Join(mirrors, ", "))
}

// issuerRing restricts a keyring to the key with one ID, so that
// openpgp.VerifyDetachedSignature checks the signature made by that key even
// when other signatures come first.
type issuerRing struct {
	openpgp.EntityList
	id uint64
}

func (r issuerRing) KeysById(id uint64) []openpgp.Key {
	if id != r.id {
		return nil
	}
	return r.EntityList.KeysById(id)
}

func (r issuerRing) KeysByIdUsage(id uint64, usage byte) []openpgp.Key {
	if id != r.id {
		return nil
	}
	return r.EntityList.KeysByIdUsage(id, usage)
}

// verifyClearsigned checks the clearsigned data and returns the signed text.
// Debian signs InRelease with several keys; one valid signature by a key of
// the keyring is enough, as for apt (gpgv).
func verifyClearsigned(data []byte, keyring openpgp.EntityList, now func() time.Time) ([]byte, *openpgp.Entity, error) {
	block, _ := clearsign.Decode(data)
	if block == nil {
		return nil, nil, errors.New("InRelease is not clearsigned (no PGP signature)")
	}
	sigs, err := io.ReadAll(block.ArmoredSignature.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("InRelease signature is unreadable: %w", err)
	}
	var issuers []uint64
	seen := map[uint64]bool{}
	pr := packet.NewReader(bytes.NewReader(sigs))
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("InRelease signature is malformed: %w", err)
		}
		sig, ok := p.(*packet.Signature)
		if !ok || sig.IssuerKeyId == nil || seen[*sig.IssuerKeyId] {
			continue
		}
		seen[*sig.IssuerKeyId] = true
		issuers = append(issuers, *sig.IssuerKeyId)
	}
	if len(issuers) == 0 {
		return nil, nil, errors.New("InRelease has no usable signature")
	}
	config := &packet.Config{Time: now}
	var errs []string
	for _, id := range issuers {
		if len(keyring.KeysByIdUsage(id, packet.KeyFlagSign)) == 0 {
			continue
		}
		_, signer, err := openpgp.VerifyDetachedSignature(issuerRing{keyring, id}, bytes.NewReader(block.Bytes), bytes.NewReader(sigs), config)
		if err == nil {
			return block.Plaintext, signer, nil
		}
		errs = append(errs, fmt.Sprintf("key %016X: %v", id, err))
	}
	if len(errs) == 0 {
		ids := make([]string, len(issuers))
		for i, id := range issuers {
			ids[i] = fmt.Sprintf("%016X", id)
		}
		return nil, nil, fmt.Errorf("InRelease is signed only by unknown keys (NO_PUBKEY %s)", strings.Join(ids, ", "))
	}
	return nil, nil, fmt.Errorf("bad InRelease signature (%s)", strings.Join(errs, "; "))
}

func describeKey(e *openpgp.Entity) string {
	if e == nil {
		return ""
	}
	s := fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)
	if id := e.PrimaryIdentity(); id != nil {
		s = id.Name + " " + s
	}
	return s
}

var dateLayouts = []string{
	time.RFC1123,                     // Sat, 09 Aug 2025 09:13:46 UTC
	time.RFC1123Z,                    // Sat, 09 Aug 2025 09:13:46 +0000
	"Mon, 2 Jan 2006 15:04:05 MST",   // single-digit day
	"Mon, 2 Jan 2006 15:04:05 -0700", //
	"Mon, _2 Jan 2006 15:04:05 MST",  //
}

func parseDate(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad date %q", s)
}

// parseRelease parses the text of a Release file.
func parseRelease(text []byte) (*Release, error) {
	var p paragraph
	err := readParagraphs(bytes.NewReader(text), func(q paragraph) error {
		if p == nil {
			p = q
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("malformed Release file: %w", err)
	}
	if p == nil {
		return nil, errors.New("empty Release file")
	}
	r := &Release{
		Suite:         p["suite"],
		Codename:      p["codename"],
		Version:       p["version"],
		Architectures: strings.Fields(p["architectures"]),
		Components:    strings.Fields(p["components"]),
		AcquireByHash: strings.EqualFold(p["acquire-by-hash"], "yes"),
		Files:         make(map[string]FileInfo),
	}
	if v := p["date"]; v != "" {
		if r.Date, err = parseDate(v); err != nil {
			return nil, fmt.Errorf("Release file: Date: %w", err)
		}
	}
	if v := p["valid-until"]; v != "" {
		if r.ValidUntil, err = parseDate(v); err != nil {
			return nil, fmt.Errorf("Release file: Valid-Until: %w", err)
		}
	}
	list, ok := p["sha256"]
	if !ok {
		return nil, errors.New("Release file has no SHA256 file list")
	}
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || !validSHA256(strings.ToLower(f[0])) {
			return nil, fmt.Errorf("Release file: malformed SHA256 line %q", truncate(line, 100))
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("Release file: bad size in SHA256 line %q", truncate(line, 100))
		}
		r.Files[f[2]] = FileInfo{Size: size, SHA256: strings.ToLower(f[0])}
	}
	return r, nil
}
