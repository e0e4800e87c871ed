package apt

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"
)

// Package is one binary package of a Packages index.
type Package struct {
	Name         string
	Version      string
	Architecture string
	Filename     string // path of the .deb relative to the mirror, e.g. "pool/main/..."
	SHA256       string
	Suite        string // the suite it was looked up in
	Component    string
	Size         int64
}

// indexExts are the Packages index variants tried, in order.
var indexExts = [...]string{".xz", ".gz", ""}

// Lookup finds the binary package name in the Packages index of component
// and arch (e.g. "main", "arm64") of suite. With version "", the highest
// version present is returned (by dpkg's ordering); otherwise exactly that
// version. Packages of architecture "all" match any arch.
//
// The index is verified against the signed InRelease (size and SHA-256) and
// cached under its SHA-256. When the package, version or index does not
// exist, the error wraps ErrNotFound and lists what is available.
func (c *Client) Lookup(ctx context.Context, suite, component, arch, name, version string) (*Package, error) {
	rel, err := c.Release(ctx, suite)
	if err != nil {
		return nil, err
	}
	return c.lookupIn(ctx, rel, component, arch, name, version)
}

// FetchPackage looks up name in each component of suite in turn (see Lookup)
// and fetches the first match (see Fetch). It returns the package and the
// path of the verified .deb.
func (c *Client) FetchPackage(ctx context.Context, suite string, components []string, arch, name, version string) (*Package, string, error) {
	if len(components) == 0 {
		return nil, "", errors.New("FetchPackage: no components given")
	}
	rel, err := c.Release(ctx, suite)
	if err != nil {
		return nil, "", err
	}
	var errs []error
	for _, comp := range components {
		p, err := c.lookupIn(ctx, rel, comp, arch, name, version)
		if errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		if err != nil {
			return nil, "", err
		}
		path, err := c.Fetch(ctx, p)
		if err != nil {
			return nil, "", err
		}
		return p, path, nil
	}
	if len(errs) == 1 {
		return nil, "", errs[0]
	}
	return nil, "", fmt.Errorf("%s not found in components %s of suite %q: %w", name, strings.Join(components, ", "), suite, errors.Join(errs...))
}

func (c *Client) lookupIn(ctx context.Context, rel *Release, component, arch, name, version string) (*Package, error) {
	if !validPath(component) {
		return nil, fmt.Errorf("invalid component name %q", component)
	}
	if !validPath(arch) || strings.Contains(arch, "/") {
		return nil, fmt.Errorf("invalid architecture %q", arch)
	}
	where := fmt.Sprintf("%s %s/%s binary-%s", rel.Mirror, rel.Dist, component, arch)
	base := component + "/binary-" + arch + "/Packages"
	dir, err := c.cacheDir()
	if err != nil {
		return nil, err
	}

	var (
		path   string
		ext    string
		listed bool
	)
	for _, e := range indexExts {
		fi, ok := rel.Files[base+e]
		if !ok || !validSHA256(fi.SHA256) {
			continue
		}
		listed = true
		canonical := rel.Mirror + "/dists/" + escapePath(rel.Dist) + "/" + escapePath(base+e)
		urls := []string{canonical}
		if rel.AcquireByHash {
			byHash := rel.Mirror + "/dists/" + escapePath(rel.Dist) + "/" + escapePath(component+"/binary-"+arch) + "/by-hash/SHA256/" + fi.SHA256
			urls = []string{byHash, canonical}
		}
		dest := filepath.Join(dir, "indexes", fi.SHA256+e)
		err := c.checkedFile(ctx, "Packages index "+base+e+" of suite "+rel.Dist, rel.Dist+"/"+base+e, dest, urls, fi.Size, fi.SHA256)
		if isHTTPNotFound(err) {
			continue // listed but missing: try the next variant, as apt does
		}
		if err != nil {
			return nil, err
		}
		path, ext = dest, e
		break
	}
	if path == "" {
		if listed {
			return nil, fmt.Errorf("%s: the Packages index listed in InRelease is missing on the mirror: retry later or use another --apt-mirror", where)
		}
		return nil, fmt.Errorf("%s: index %w: InRelease lists none (suite %q has components %s and architectures %s): check the component and architecture",
			where, ErrNotFound, rel.Dist, strings.Join(rel.Components, " "), strings.Join(rel.Architectures, " "))
	}

	cands, err := scanPackages(path, ext, name, arch)
	if err != nil {
		return nil, fmt.Errorf("%s: Packages index %s: %w", where, path, err)
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("package %q %w in %s: check the package name and component", name, ErrNotFound, where)
	}
	sort.SliceStable(cands, func(i, j int) bool { return CompareVersions(cands[i].Version, cands[j].Version) > 0 })
	var p *Package
	if version == "" {
		p = cands[0]
	} else {
		for _, q := range cands {
			if q.Version == version {
				p = q
				break
			}
		}
		if p == nil {
			vs := make([]string, len(cands))
			for i, q := range cands {
				vs[i] = q.Version
			}
			return nil, fmt.Errorf("package %q version %q %w in %s (available: %s): pass one of these versions, or none for the newest",
				name, version, ErrNotFound, where, strings.Join(vs, ", "))
		}
	}
	p.Suite, p.Component = rel.Dist, component
	return p, nil
}

// scanPackages reads a Packages index (compressed as ext says) and returns
// the stanzas of package name for arch or "all". The index is decompressed
// once into a ".plain" file next to it (the pure-Go xz decoder takes about
// a second for a main index), and only the stanzas that start with the
// package's name are parsed.
func scanPackages(path, ext, name, arch string) ([]*Package, error) {
	plain := path
	if ext != "" {
		plain = path + ".plain"
	}
	data, err := os.ReadFile(plain)
	if err != nil {
		if data, err = decompressIndex(path, ext); err != nil {
			return nil, err
		}
		if ext != "" {
			_ = writeFileAtomic(plain, data) // only a speed-up
		}
	}
	return parsePackages(bytes.NewReader(stanzasOf(data, name)), name, arch)
}

func decompressIndex(path, ext string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	switch ext {
	case ".xz":
		if r, err = xz.NewReader(r); err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
	case ".gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", path, err)
	}
	return data, nil
}

// stanzasOf returns the paragraphs of data whose first line is
// "Package: name", separated by blank lines.
func stanzasOf(data []byte, name string) []byte {
	key := []byte("Package: " + name + "\n")
	var out bytes.Buffer
	for i := 0; i < len(data); {
		j := bytes.Index(data[i:], key)
		if j < 0 {
			break
		}
		start := i + j
		if start > 0 && data[start-1] != '\n' {
			i = start + len(key)
			continue
		}
		end := bytes.Index(data[start:], []byte("\n\n"))
		if end < 0 {
			end = len(data)
		} else {
			end += start + 1
		}
		out.Write(data[start:end])
		out.WriteString("\n")
		i = end
	}
	return out.Bytes()
}

func parsePackages(r io.Reader, name, arch string) ([]*Package, error) {
	var out []*Package
	err := readParagraphs(r, func(p paragraph) error {
		if p["package"] != name {
			return nil
		}
		if a := p["architecture"]; a != arch && a != "all" {
			return nil
		}
		size, err := strconv.ParseInt(p["size"], 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%s %s: bad Size %q", name, p["version"], p["size"])
		}
		sum := strings.ToLower(p["sha256"])
		if !validSHA256(sum) {
			return fmt.Errorf("%s %s: bad or missing SHA256 %q", name, p["version"], p["sha256"])
		}
		if p["version"] == "" || p["filename"] == "" {
			return fmt.Errorf("%s: stanza without Version or Filename", name)
		}
		out = append(out, &Package{
			Name:         name,
			Version:      p["version"],
			Architecture: p["architecture"],
			Filename:     p["filename"],
			SHA256:       sum,
			Size:         size,
		})
		return nil
	})
	return out, err
}

// Fetch downloads the .deb of p into the cache, verifies its size and
// SHA-256, and returns its path. A cached copy that matches is used without
// network access; one that does not match is deleted.
func (c *Client) Fetch(ctx context.Context, p *Package) (string, error) {
	if p == nil {
		return "", errors.New("Fetch: nil package")
	}
	sum := strings.ToLower(p.SHA256)
	if !validSHA256(sum) {
		return "", fmt.Errorf("%s %s: invalid SHA256 %q", p.Name, p.Version, p.SHA256)
	}
	if !validPath(p.Filename) {
		return "", fmt.Errorf("%s %s: refusing unsafe Filename %q", p.Name, p.Version, p.Filename)
	}
	if p.Size <= 0 {
		return "", fmt.Errorf("%s %s: invalid Size %d", p.Name, p.Version, p.Size)
	}
	mirror, err := c.mirror()
	if err != nil && !c.Offline {
		return "", err // offline, the mirror is not needed
	}
	dir, err := c.cacheDir()
	if err != nil {
		return "", err
	}
	dest := filepath.Join(dir, "debs", sum+".deb")
	what := fmt.Sprintf("%s %s (%s)", p.Name, p.Version, urlBase(p.Filename))
	if err := c.checkedFile(ctx, what, urlBase(p.Filename), dest, []string{mirror + "/" + escapePath(p.Filename)}, p.Size, sum); err != nil {
		return "", err
	}
	return dest, nil
}
