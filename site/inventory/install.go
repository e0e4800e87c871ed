package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"text/template"

	"github.com/ramboot/ramboot/bootspec"
)

// Install is a node's install: what ramboot's init writes to the node's
// own disk, rendered as option 224's install form:
//
//	install:URL#sha256=HEX&disk=D&hostname=H&keys=URL&seed=URL&grow=0&then=local&gen=N
//
// The form rendered here ends before gen=: the install generation comes
// from the node's record in the server's state file, and the server adds
// it (WithGeneration) when it hands the form out.
//
// Image, Keys, Seed and Hostname are templates like option224. Fields at
// their default (disk auto, grow true, then reboot) are left out of the
// form, which keeps it short: one DHCP option holds 255 bytes, and a longer
// option 224 goes as several (RFC 3396), which ramboot serve writes and
// ramboot's init joins, but a third-party DHCP server may not.
//
// A node's install: is merged field by field over the defaults' install:.
type Install struct {
	Image    string `yaml:"image"`    // http, https or tftp URL of a raw disk image (gzip/xz/zstd allowed)
	SHA256   string `yaml:"sha256"`   // of the image as served, or "none"
	Disk     string `yaml:"disk"`     // auto (default), /dev/NAME, /dev/disk/by-id/ID
	Hostname string `yaml:"hostname"` // default the node's hostname
	Keys     string `yaml:"keys"`     // URL of root's authorized_keys [#sha256=HEX]
	Seed     string `yaml:"seed"`     // base URL of a cloud-init NoCloud seed [#sha256=UHEX,MHEX]
	Grow     *bool  `yaml:"grow"`     // grow the last partition (default true)
	Then     string `yaml:"then"`     // reboot (default) or local

	image, hostname, keys, seed *template.Template
	// keysSHA256 and seedSHA256 are the digests after keys:' and seed:'s
	// #sha256= ("HEX", "UHEX,MHEX"; lower case), "" when not given.
	keysSHA256, seedSHA256 string
}

// MaxInstallForm is the longest rendered install form served, gen=
// included. Past 255 bytes it is sent as several options (RFC 3396); this
// bound keeps a DHCP reply well inside the 1500 bytes ramboot's init
// accepts.
const MaxInstallForm = 512

// maxGenSuffix is the room kept for "&gen=N" (at most nine digits, as
// ramboot's init accepts).
const maxGenSuffix = len("&gen=999999999")

// WithGeneration adds the install generation to a rendered install form:
// the init leaves a disk alone that carries the same image at this
// generation or a later one. gen < 1 leaves the form as it is (an init
// reads a missing gen= as 0).
func WithGeneration(form string, gen int) string {
	if form == "" || gen < 1 {
		return form
	}
	spec, err := bootspec.Parse(form)
	if err != nil || spec.Kind != bootspec.Install {
		return form // render wrote it, so it parses; never reached
	}
	spec.Install.Gen = gen
	return spec.Install.String()
}

// sampleVars stand in for a node's at load, to check rendered values.
var sampleVars = Vars{MAC: "02:00:00:00:00:01", MACHyphen: "02-00-00-00-00-01", Serial: "00000001", Hostname: "node-1", Server: "192.0.2.1"}

var (
	diskNameRE = regexp.MustCompile(`^/dev/[A-Za-z0-9][A-Za-z0-9._-]*$`)
	diskIDRE   = regexp.MustCompile(`^/dev/disk/by-id/[A-Za-z0-9][A-Za-z0-9._:+@-]*$`)
	hexRE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func parseField(name, s string) (*template.Template, error) {
	if s == "" {
		return nil, nil
	}
	t, err := template.New(name).Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, fmt.Errorf("install.%s: %v", name, err)
	}
	if err := t.Execute(&bytes.Buffer{}, Vars{}); err != nil {
		return nil, fmt.Errorf("install.%s: %v (fields: .MAC .MACHyphen .Serial .Hostname .Server)", name, err)
	}
	return t, nil
}

// check validates the fields given; complete checks what a whole install
// needs once merged with the defaults.
func (in *Install) check() error {
	var err error
	if in.image, err = parseField("image", in.Image); err != nil {
		return err
	}
	keys, keysFrag, _ := strings.Cut(in.Keys, "#")
	if in.keys, err = parseField("keys", keys); err != nil {
		return err
	}
	if in.keysSHA256, err = fileDigests("keys", in.Keys, keysFrag); err != nil {
		return err
	}
	seed, seedFrag, _ := strings.Cut(in.Seed, "#")
	if in.seed, err = parseField("seed", seed); err != nil {
		return err
	}
	if in.seedSHA256, err = fileDigests("seed", in.Seed, seedFrag); err != nil {
		return err
	}
	if in.hostname, err = parseField("hostname", in.Hostname); err != nil {
		return err
	}
	if in.SHA256 != "" {
		s := strings.ToLower(strings.TrimSpace(in.SHA256))
		if s != "none" && !hexRE.MatchString(s) {
			return fmt.Errorf("install.sha256 %q: want the image's 64 hex digits (sha256sum IMAGE, of the file as served, compressed or not), or none to skip the check", in.SHA256)
		}
		in.SHA256 = s
	}
	switch d := in.Disk; {
	case d == "", d == "auto", diskNameRE.MatchString(d), diskIDRE.MatchString(d):
	default:
		return fmt.Errorf("install.disk %q: use auto (the only internal disk), /dev/NAME (like /dev/nvme0n1, /dev/mmcblk0) or /dev/disk/by-id/ID", d)
	}
	switch in.Then {
	case "", "reboot", "local":
	default:
		return fmt.Errorf("install.then %q: use reboot (the default) or local (boot the installed system at once)", in.Then)
	}
	return nil
}

// over returns in with the fields it leaves empty taken from d.
func (in *Install) over(d *Install) *Install {
	m := *in
	if d == nil {
		return &m
	}
	if m.image == nil {
		m.Image, m.image = d.Image, d.image
	}
	if m.SHA256 == "" {
		m.SHA256 = d.SHA256
	}
	if m.Disk == "" {
		m.Disk = d.Disk
	}
	if m.hostname == nil {
		m.Hostname, m.hostname = d.Hostname, d.hostname
	}
	if m.keys == nil {
		m.Keys, m.keys, m.keysSHA256 = d.Keys, d.keys, d.keysSHA256
	}
	if m.seed == nil {
		m.Seed, m.seed, m.seedSHA256 = d.Seed, d.seed, d.seedSHA256
	}
	if m.Grow == nil {
		m.Grow = d.Grow
	}
	if m.Then == "" {
		m.Then = d.Then
	}
	return &m
}

// complete checks a merged install: image and sha256 given, and the form
// rendered for a sample node valid and short enough.
func (in *Install) complete() error {
	if in.image == nil {
		return errors.New("install: needs image: the URL of the disk image (http, https or tftp)")
	}
	if in.SHA256 == "" {
		return errors.New("install: needs sha256: the image's digest (sha256sum IMAGE), or sha256: none to skip the check")
	}
	_, _, err := in.render(sampleVars)
	return err
}

// render returns the install form for a node, and the image URL in it.
func (in *Install) render(v Vars) (form, image string, err error) {
	exec := func(name string, t *template.Template) (string, error) {
		if t == nil {
			return "", nil
		}
		var b bytes.Buffer
		if err := t.Execute(&b, v); err != nil {
			return "", fmt.Errorf("install.%s: %w", name, err)
		}
		return b.String(), nil
	}
	image, err = exec("image", in.image)
	if err != nil {
		return "", "", err
	}
	if err := checkURL("image", image); err != nil {
		return "", "", err
	}
	if u, _ := url.Parse(image); u.Path == "" || u.Path == "/" {
		return "", "", fmt.Errorf("install.image %q: the URL names no file", image)
	}
	// The form is option 224's own writer's (bootspec), read back by its
	// parser: a value that does not come back as it went in (a URL with a
	// separator in it) is refused here, not on the node.
	spec := bootspec.InstallSpec{Disk: in.Disk, Grow: in.Grow == nil || *in.Grow, Then: in.Then}
	spec.URL, _ = url.Parse(image)
	if in.SHA256 == "none" {
		spec.NoDigest = true
	} else {
		spec.SHA256 = in.SHA256
	}
	host, err := exec("hostname", in.hostname)
	if err != nil {
		return "", "", err
	}
	if host == "" {
		host = v.Hostname
	}
	if host != "" {
		if !validHostname(host) {
			return "", "", fmt.Errorf("install.hostname %q: use letters, digits and dashes (RFC 1123)", host)
		}
		spec.Hostname = host
	}
	for _, f := range []struct {
		name   string
		t      *template.Template
		sha256 string
	}{{"keys", in.keys, in.keysSHA256}, {"seed", in.seed, in.seedSHA256}} {
		u, err := exec(f.name, f.t)
		if err != nil {
			return "", "", err
		}
		if u == "" {
			continue
		}
		if err := checkURL(f.name, u); err != nil {
			return "", "", err
		}
		pu, _ := url.Parse(u)
		if f.name == "keys" {
			spec.Keys, spec.KeysSHA256 = pu, f.sha256
		} else if spec.Seed = pu; f.sha256 != "" {
			um, _, _ := strings.Cut(f.sha256, ",")
			spec.SeedSHA256 = [2]string{um, f.sha256[len(um)+1:]}
		}
	}
	form = spec.String()
	if len(form)+maxGenSuffix > MaxInstallForm {
		return "", "", fmt.Errorf("install: option 224 would be %d bytes with its install generation, more than %d: serve the image, keys and seed at shorter URLs", len(form)+maxGenSuffix, MaxInstallForm)
	}
	// With no server address (ramboot node, which serves nothing) a
	// {{.Server}} URL has no host: the form is not one to hand out.
	if back, err := bootspec.Parse(form); v.Server != "" && (err != nil || back.Install.String() != form) {
		return "", "", fmt.Errorf("install: the install form %q does not read back as written (%v): check the URLs for &, # and spaces", form, err)
	}
	return form, image, nil
}

// fileDigests checks the fragment of keys: (URL#sha256=HEX, the
// authorized_keys file's digest) or seed: (URL#sha256=UHEX,MHEX: user-data's
// and meta-data's) and returns its digests, lower case, comma-separated;
// "" when there is no fragment. ramboot's init checks what it fetches
// against them.
func fileDigests(field, value, frag string) (string, error) {
	if !strings.Contains(value, "#") {
		return "", nil
	}
	if strings.TrimSpace(value[:strings.Index(value, "#")]) == "" {
		return "", fmt.Errorf("install.%s %q: the URL before # is missing", field, value)
	}
	want, form := 1, "sha256=HEX: the 64 hex digits of the authorized_keys file as served (sha256sum FILE)"
	if field == "seed" {
		want, form = 2, "sha256=UHEX,MHEX: the digests of user-data then meta-data as served, in that order (sha256sum user-data meta-data)"
	}
	list, ok := strings.CutPrefix(frag, "sha256=")
	sums := strings.Split(strings.ToLower(list), ",")
	if ok && len(sums) == want {
		for _, h := range sums {
			if !hexRE.MatchString(h) {
				ok = false
			}
		}
	}
	if !ok || len(sums) != want {
		return "", fmt.Errorf("install.%s %q: after # want %s, or no # for no check", field, value, form)
	}
	return strings.Join(sums, ","), nil
}

// checkURL checks a rendered URL of the install form.
func checkURL(field, s string) error {
	if i := strings.IndexAny(s, "&,# \t\r\n"); i >= 0 {
		return fmt.Errorf("install.%s %q holds %q, which the install form uses to separate its values: serve it at a URL without a query or fragment", field, s, string(s[i]))
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("install.%s %q: %v", field, s, err)
	}
	switch u.Scheme {
	case "http", "https", "tftp":
	default:
		return fmt.Errorf("install.%s %q: want an http, https or tftp URL, like http://{{.Server}}:8080/img/debian.raw.xz", field, s)
	}
	if u.Host == "" {
		return fmt.Errorf("install.%s %q: the URL names no host (use {{.Server}} for ramboot serve's address)", field, s)
	}
	return nil
}

// parseBoot parses a boot: form.
func parseBoot(s string) (*template.Template, error) {
	if strings.HasPrefix(strings.TrimSpace(s), "install:") {
		return nil, errors.New("boot: is what the node gets once installed; put the install in install: {image: ..., sha256: ...}")
	}
	t, err := template.New("boot").Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, fmt.Errorf("boot: %v", err)
	}
	if err := t.Execute(&bytes.Buffer{}, Vars{}); err != nil {
		return nil, fmt.Errorf("boot: %v (fields: .MAC .MACHyphen .Serial .Hostname .Server)", err)
	}
	return t, nil
}

// checkInstall works out a node's install (its own over the defaults', or
// the defaults' alone unless the node has its own option224) and checks it.
func (inv *Inventory) checkInstall(n *Node) error {
	d := inv.Defaults.Install
	switch {
	case n.Install != nil:
		n.inst = n.Install.over(d)
		if err := n.inst.complete(); err != nil {
			return err
		}
	case n.tmpl == nil && d != nil && d.image != nil:
		n.inst = d
	}
	if n.Boot != "" && n.inst == nil {
		if n.tmpl != nil {
			return errors.New("boot: is what a node gets once installed, and this node has option224 and no install: drop boot:")
		}
		return errors.New("boot: is what a node gets once installed, and this node has no install: (nor do the defaults): use option224 for what it boots")
	}
	if n.inst != nil && n.mac == nil {
		return errors.New("install: needs the node's mac: ramboot's init asks DHCP by MAC only, without the Pi serial (add mac: to this entry)")
	}
	return nil
}
