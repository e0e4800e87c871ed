package bootspec

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// The datacenter lifecycle's forms: install an OS on the node's own disk,
// then boot what is installed.
//
//	local
//	local:/dev/mmcblk0 | local:/dev/vda2 | local:PARTUUID=... | local:UUID=... | local:LABEL=...
//	install:URL#sha256=HEX&disk=auto&hostname=NAME&keys=URL&seed=URL&grow=1&then=reboot&gen=N
//
// keys= and seed= may carry the digests of what they fetch:
// keys=URL#sha256=HEX, seed=URL#sha256=UHEX,MHEX (user-data's, then
// meta-data's). A file that does not match fails the install before it is
// written to the disk.

// LocalSpec is option 224 "local[:TARGET]".
type LocalSpec struct {
	// Target limits the search to one disk or partition: a /dev path
	// (/dev/disk/by-id/... included) or PARTUUID=, UUID=, LABEL=. ""
	// searches every disk.
	Target string
}

// InstallSpec is option 224 "install:URL#...".
type InstallSpec struct {
	// URL is the disk image (raw, or gzip/xz/zstd compressed: told by its
	// first bytes); http, https or tftp.
	URL *url.URL
	// SHA256 is the digest of URL's bytes as served, in lower-case hex.
	SHA256 string
	// NoDigest (sha256=none) installs an image with no digest to check.
	NoDigest bool
	// Disk is where it goes: "auto" (the only internal disk), a /dev path.
	Disk string
	// Hostname is written to the installed root's /etc/hostname.
	Hostname string
	// Keys is an authorized_keys file installed as root's (its URL
	// without the #sha256= fragment).
	Keys *url.URL
	// KeysSHA256 is the digest of Keys' bytes as served, in lower-case
	// hex (keys=URL#sha256=HEX); "" installs them unchecked.
	KeysSHA256 string
	// Seed is a cloud-init NoCloud seed: Seed/user-data and Seed/meta-data
	// are written to the boot partition (its URL without the fragment).
	Seed *url.URL
	// SeedSHA256 are the digests of user-data and meta-data, in that
	// order, in lower-case hex (seed=URL#sha256=UHEX,MHEX, as
	// `sha256sum user-data meta-data` prints them); "" installs them
	// unchecked.
	SeedSHA256 [2]string
	// Grow grows the last partition to the end of the disk.
	Grow bool
	// Then is what follows a good install: "reboot" or "local".
	Then string
	// Gen is the install generation the server asks for (gen=N; 0 when
	// not given). A disk whose install record carries this generation or
	// a later one, of the same image, is not written again: only a new
	// generation (an operator's reinstall) re-flashes a disk.
	Gen int
}

// MaxGen bounds gen=: nine digits.
const MaxGen = 999999999

// DefaultDisk is an install's disk when none is named.
const DefaultDisk = "auto"

func parseLocal(s, v string) (Spec, error) {
	if strings.EqualFold(v, "local") {
		return Spec{Kind: Local}, nil
	}
	t := v[len("local:"):]
	if err := checkTarget(t); err != nil {
		return Spec{}, parseErr(s, "%v", err)
	}
	return Spec{Kind: Local, Local: LocalSpec{Target: t}}, nil
}

// checkTarget accepts the ways to name a disk or partition.
func checkTarget(t string) error {
	switch {
	case strings.HasPrefix(t, "/dev/"):
		if strings.Contains(t, "/../") || strings.HasSuffix(t, "/..") || len(t) == len("/dev/") {
			return fmt.Errorf("local:%s: want a device like /dev/vda, /dev/mmcblk0p1 or /dev/disk/by-id/...", t)
		}
		if udevLink(t) {
			return fmt.Errorf("local:%s: %s", t, noUdev)
		}
		return nil
	case strings.HasPrefix(t, "PARTUUID="), strings.HasPrefix(t, "UUID="), strings.HasPrefix(t, "LABEL="):
		_, val, _ := strings.Cut(t, "=")
		if val == "" {
			return fmt.Errorf("local:%s: the value after = is empty", t)
		}
		return nil
	}
	return fmt.Errorf("local:%s: name a disk or partition as /dev/NAME, /dev/disk/by-id/ID, PARTUUID=, UUID= or LABEL=", t)
}

// The init has no udev: of the /dev/disk links only /dev/disk/by-id/ID
// is known, resolved from sysfs.
const noUdev = "the node's init has no udev to make /dev/disk links: name the disk /dev/NAME or /dev/disk/by-id/ID (resolved from sysfs)"

// udevLink says whether p is a /dev/disk link other than a by-id name.
func udevLink(p string) bool {
	id, ok := strings.CutPrefix(p, "/dev/disk/by-id/")
	if ok {
		return id == "" || strings.Contains(id, "/")
	}
	return strings.HasPrefix(p, "/dev/disk/")
}

func parseInstall(s, v string) (Spec, error) {
	rest := v[len("install:"):]
	target, frag, _ := strings.Cut(rest, "#")
	u, err := url.Parse(target)
	if err != nil {
		return Spec{}, parseErr(s, "install: bad image URL: %v", err)
	}
	switch u.Scheme {
	case "http", "https", "tftp":
	default:
		return Spec{}, parseErr(s, "install: the image URL must be http://, https:// or tftp://")
	}
	if err := checkServer(u.Hostname(), strings.HasPrefix(u.Host, "[")); err != nil {
		return Spec{}, parseErr(s, "install: bad host: %v", err)
	}
	if u.Path == "" || u.Path == "/" {
		return Spec{}, parseErr(s, "install: the image URL needs a file path")
	}
	in := InstallSpec{URL: u, Disk: DefaultDisk, Grow: true, Then: "reboot"}
	seen := map[string]bool{}
	for _, kv := range installSettings(frag) {
		k, val, _ := strings.Cut(kv, "=")
		if seen[k] {
			return Spec{}, parseErr(s, "install setting %s given twice", k)
		}
		seen[k] = true
		switch k {
		case "sha256":
			if strings.EqualFold(val, "none") {
				in.NoDigest = true
				continue
			}
			if len(val) != 64 || strings.Trim(strings.ToLower(val), "0123456789abcdef") != "" {
				return Spec{}, parseErr(s, "sha256=%q is not 64 hex digits (or none, to install unchecked)", val)
			}
			in.SHA256 = strings.ToLower(val)
		case "disk":
			if val != DefaultDisk && !strings.HasPrefix(val, "/dev/") || strings.Contains(val, "..") {
				return Spec{}, parseErr(s, "disk=%q: want auto (the only internal disk), /dev/NAME or /dev/disk/by-id/ID", val)
			}
			if udevLink(val) {
				return Spec{}, parseErr(s, "disk=%s: %s", val, noUdev)
			}
			in.Disk = val
		case "hostname":
			if !validHostname(val) {
				return Spec{}, parseErr(s, "hostname=%q: letters, digits and hyphens, dot-separated labels of at most 63", val)
			}
			in.Hostname = val
		case "keys", "seed":
			target, digest, hasDigest := strings.Cut(val, "#")
			ku, err := url.Parse(target)
			if err != nil || (ku.Scheme != "http" && ku.Scheme != "https" && ku.Scheme != "tftp") || ku.Host == "" {
				return Spec{}, parseErr(s, "%s=%q: want an http://, https:// or tftp:// URL", k, target)
			}
			var sums []string
			if hasDigest {
				if sums, err = fileDigests(k, digest); err != nil {
					return Spec{}, parseErr(s, "%v", err)
				}
			}
			if k == "keys" {
				in.Keys = ku
				if sums != nil {
					in.KeysSHA256 = sums[0]
				}
			} else {
				in.Seed = ku
				if sums != nil {
					in.SeedSHA256 = [2]string{sums[0], sums[1]}
				}
			}
		case "grow":
			switch val {
			case "1", "yes", "true":
				in.Grow = true
			case "0", "no", "false":
				in.Grow = false
			default:
				return Spec{}, parseErr(s, "grow=%q: want 1 or 0", val)
			}
		case "then":
			if val != "reboot" && val != "local" {
				return Spec{}, parseErr(s, "then=%q: want reboot or local", val)
			}
			in.Then = val
		case "gen":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > MaxGen || strconv.Itoa(n) != val {
				return Spec{}, parseErr(s, "gen=%q: want the install generation, a number from 0 to %d", val, MaxGen)
			}
			in.Gen = n
		default:
			return Spec{}, parseErr(s, "unknown install setting %q (install takes sha256, disk, hostname, keys, seed, grow, then, gen)", k)
		}
	}
	if in.SHA256 == "" && !in.NoDigest {
		return Spec{}, parseErr(s, "install needs #sha256=HEX of the image (or sha256=none to install it unchecked)")
	}
	return Spec{Kind: Install, Install: in}, nil
}

// String renders the install form, defaults left out.
func (in InstallSpec) String() string {
	var kv []string
	if in.NoDigest {
		kv = append(kv, "sha256=none")
	} else {
		kv = append(kv, "sha256="+in.SHA256)
	}
	if in.Disk != "" && in.Disk != DefaultDisk {
		kv = append(kv, "disk="+in.Disk)
	}
	if in.Hostname != "" {
		kv = append(kv, "hostname="+in.Hostname)
	}
	if in.Keys != nil {
		k := "keys=" + in.Keys.String()
		if in.KeysSHA256 != "" {
			k += "#sha256=" + in.KeysSHA256
		}
		kv = append(kv, k)
	}
	if in.Seed != nil {
		k := "seed=" + in.Seed.String()
		if in.SeedSHA256 != [2]string{} {
			k += "#sha256=" + in.SeedSHA256[0] + "," + in.SeedSHA256[1]
		}
		kv = append(kv, k)
	}
	if !in.Grow {
		kv = append(kv, "grow=0")
	}
	if in.Then != "" && in.Then != "reboot" {
		kv = append(kv, "then="+in.Then)
	}
	if in.Gen != 0 {
		kv = append(kv, "gen="+strconv.Itoa(in.Gen))
	}
	return "install:" + in.URL.String() + "#" + strings.Join(kv, "&")
}

// installSettings splits an install form's settings at & and , (empty
// ones dropped). A digest list is part of its setting: in
// seed=URL#sha256=UHEX,MHEX the comma separates user-data's digest from
// meta-data's, so a field with no = that follows keys= or seed= with a
// fragment, after a comma, is joined back to it (fileDigests then counts
// the digests).
func installSettings(frag string) []string {
	var out []string
	var sep byte // the separator before the field at hand
	joinable := false
	for frag != "" {
		f, next := frag, byte(0)
		if i := strings.IndexAny(frag, "&,"); i >= 0 {
			f, next, frag = frag[:i], frag[i], frag[i+1:]
		} else {
			frag = ""
		}
		switch {
		case f == "":
			joinable = false
		case joinable && sep == ',' && !strings.Contains(f, "="):
			out[len(out)-1] += "," + f
		default:
			out = append(out, f)
			joinable = (strings.HasPrefix(f, "keys=") || strings.HasPrefix(f, "seed=")) && strings.Contains(f, "#")
		}
		sep = next
	}
	return out
}

// fileDigests parses the fragment of keys=URL#sha256=HEX (one digest) or
// seed=URL#sha256=UHEX,MHEX (two: user-data's, then meta-data's).
func fileDigests(k, frag string) ([]string, error) {
	want, takes, form := 1, "one digest", "keys=URL#sha256=HEX, the SHA-256 of the authorized_keys file as served (sha256sum FILE)"
	if k == "seed" {
		want, takes, form = 2, "two digests", "seed=URL#sha256=UHEX,MHEX, the SHA-256 of user-data then meta-data as served (sha256sum user-data meta-data)"
	}
	list, ok := strings.CutPrefix(frag, "sha256=")
	if !ok {
		return nil, fmt.Errorf("%s=...#%s: after # want %s", k, frag, form)
	}
	sums := strings.Split(list, ",")
	if len(sums) != want {
		return nil, fmt.Errorf("%s=...#%s: %s takes %s, %d given: want %s", k, frag, k, takes, len(sums), form)
	}
	for i, h := range sums {
		if len(h) != 64 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
			return nil, fmt.Errorf("%s=...#%s: %q is not 64 hex digits: want %s", k, frag, h, form)
		}
		sums[i] = strings.ToLower(h)
	}
	return sums, nil
}

// validHostname: RFC 1123 labels.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
