// Package bootspec parses the value of ramboot's private DHCP option 224
// (or the kernel command line parameter ramboot.224=...), which tells the
// init what to do after DHCP: drop to the provisioning shell, chain-load a
// URL (an iPXE script or a kernel), or switch root to an NFS export.
package bootspec

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Kind is what the init should do next.
type Kind int

const (
	// Shell gives the provisioning shell.
	Shell Kind = iota
	// Chain fetches URL (an iPXE script or a kernel) and boots it.
	Chain
	// NFS mounts an NFS root and switches to it.
	NFS
	// Local kexecs the OS installed on the node's own disk.
	Local
	// Install writes a disk image to the node's disk, then reboots or
	// boots it.
	Install
)

func (k Kind) String() string {
	switch k {
	case Shell:
		return "shell"
	case Chain:
		return "chain"
	case NFS:
		return "nfs"
	case Local:
		return "local"
	case Install:
		return "install"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Defaults for NFSSpec fields that the value did not set.
const (
	DefaultNFSVersion = "3"
	DefaultInit       = "/sbin/init"
)

// Spec is a parsed option 224.
type Spec struct {
	Kind Kind
	// URL is set for Kind == Chain; its scheme is http, https or tftp.
	URL *url.URL
	// Image is set for Kind == Chain from the URL's fragment: what a root
	// image at URL is checked and run with.
	Image ImageOpts
	// NFS is set for Kind == NFS.
	NFS NFSSpec
	// Local is set for Kind == Local.
	Local LocalSpec
	// Install is set for Kind == Install.
	Install InstallSpec
}

// NFSSpec describes an NFS root.
type NFSSpec struct {
	// Server is an IPv4 address, an IPv6 address (without brackets) or a
	// host name.
	Server string
	// Export is the absolute path of the export on Server.
	Export string
	// Version is the NFS version: "3", "4", "4.0", "4.1" or "4.2".
	Version string
	// Overlay requests a tmpfs overlay over the (read-only) NFS root.
	Overlay bool
	// Init is the absolute path of the init to exec in the new root.
	Init string
	// Options are the remaining NFS mount options, in order.
	Options []string
}

// ImageOpts are a root image's settings, from the fragment of its URL:
// #sha256=HEX&overlay=SIZE&init=/PATH (keys separated by & or ,).
type ImageOpts struct {
	// Set says the fragment named the URL's content a root image: then it
	// must be one.
	Set bool
	// SHA256 is the expected digest in lower-case hex; "" looks for
	// URL.sha256 next to the image.
	SHA256 string
	// NoDigest (sha256=none) runs an image with no digest to check.
	NoDigest bool
	// Overlay is the size of the RAM layer that takes the node's writes,
	// as tmpfs takes it: 512M, 2G, 50%. "" is tmpfs's default, half the RAM.
	Overlay string
	// Init is the program to run in the image (default /sbin/init).
	Init string
}

// String renders o as the fragment Parse reads, without the "#".
func (o ImageOpts) String() string {
	var kv []string
	switch {
	case o.NoDigest:
		kv = append(kv, "sha256=none")
	case o.SHA256 != "":
		kv = append(kv, "sha256="+o.SHA256)
	}
	if o.Overlay != "" {
		kv = append(kv, "overlay="+o.Overlay)
	}
	if o.Init != "" && o.Init != DefaultInit {
		kv = append(kv, "init="+o.Init)
	}
	return strings.Join(kv, "&")
}

// Source returns the mount(2) source, "server:/export", with an IPv6
// server in brackets.
func (n NFSSpec) Source() string {
	return hostForm(n.Server) + ":" + n.Export
}

// MountData returns the comma-separated NFS mount options: vers=Version
// followed by Options. (A kernel-side NFS mount also needs addr=; the
// caller adds it once the server address is resolved.)
func (n NFSSpec) MountData() string {
	return strings.Join(append([]string{"vers=" + n.Version}, n.Options...), ",")
}

func hostForm(server string) string {
	if strings.Contains(server, ":") {
		return "[" + server + "]"
	}
	return server
}

// String renders s in a form that Parse accepts and that parses back to
// an equal Spec.
func (s Spec) String() string {
	switch s.Kind {
	case Shell:
		return "shell"
	case Chain:
		if s.URL == nil {
			return "chain <nil>"
		}
		if s.Image.Set {
			return s.URL.String() + "#" + s.Image.String()
		}
		return s.URL.String()
	case NFS:
		n := s.NFS
		q := []string{"vers=" + n.Version}
		if n.Overlay {
			q = append(q, "overlay")
		}
		q = append(q, "init="+n.Init)
		q = append(q, n.Options...)
		u := url.URL{Scheme: "nfs", Host: hostForm(n.Server), Path: n.Export, RawQuery: strings.Join(q, "&")}
		return u.String()
	case Local:
		if s.Local.Target != "" {
			return "local:" + s.Local.Target
		}
		return "local"
	case Install:
		if s.Install.URL == nil {
			return "install <nil>"
		}
		return s.Install.String()
	}
	return s.Kind.String()
}

// accepted is appended to every parse error.
const accepted = `accepted forms: empty or "shell"; http://host/path, https://host/path, tftp://host/path ` +
	`(a root image: URL#sha256=HEX|none&overlay=SIZE&init=/path); ` +
	`nfs://host/export[?vers=N&overlay&init=/path&opt...]; host:/export[,vers=N,overlay,init=/path,opt...]; ` +
	`local[:/dev/X|PARTUUID=|UUID=|LABEL=]; install:URL#sha256=HEX[&disk=auto|/dev/X&hostname=H&keys=URL[#sha256=HEX]&seed=URL[#sha256=UHEX,MHEX]&grow=1|0&then=reboot|local]`

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid option 224")

func parseErr(s, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s (%s)", ErrInvalid, s, fmt.Sprintf(format, args...), accepted)
}

// Parse parses an option 224 value. Errors quote the value and list the
// accepted forms.
func Parse(s string) (Spec, error) {
	v := strings.TrimSpace(s)
	if v == "" || strings.EqualFold(v, "shell") {
		return Spec{Kind: Shell}, nil
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || r == ' ' || r == '\t' {
			return Spec{}, parseErr(s, "contains whitespace or control characters")
		}
	}
	if strings.EqualFold(v, "local") || strings.HasPrefix(v, "local:") {
		return parseLocal(s, v)
	}
	if strings.HasPrefix(v, "install:") {
		return parseInstall(s, v)
	}
	if i := strings.Index(v, "://"); i > 0 && isScheme(v[:i]) {
		switch strings.ToLower(v[:i]) {
		case "http", "https", "tftp":
			return parseChain(s, v)
		case "file":
			// A file in the initramfs: for static setups and tests.
			u, err := url.Parse(v)
			if err != nil || u.Host != "" || u.Path == "" || u.Path == "/" {
				return Spec{}, parseErr(s, "file URL needs an absolute path and no host, like file:///boot/boot.ipxe")
			}
			return Spec{Kind: Chain, URL: u}, nil
		case "nfs":
			return parseNFSURL(s, v)
		default:
			return Spec{}, parseErr(s, "unsupported URL scheme %q", v[:i])
		}
	}
	if strings.Contains(v, ":/") {
		return parseNFSRoot(s, v)
	}
	return Spec{}, parseErr(s, "unrecognised value")
}

func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

func parseChain(s, v string) (Spec, error) {
	// The fragment is ramboot's, not a URL's: 50% is a size, not an escape.
	v, frag, hasFrag := strings.Cut(v, "#")
	u, err := url.Parse(v)
	if err != nil {
		return Spec{}, parseErr(s, "bad URL: %v", err)
	}
	if u.Opaque != "" {
		return Spec{}, parseErr(s, "URL has no host")
	}
	if err := checkServer(u.Hostname(), strings.HasPrefix(u.Host, "[")); err != nil {
		return Spec{}, parseErr(s, "bad host: %v", err)
	}
	if p := u.Port(); p != "" && !validPort(p) {
		return Spec{}, parseErr(s, "bad port %q", p)
	}
	if hasFrag {
		img, err := parseImageOpts(frag)
		if err != nil {
			return Spec{}, parseErr(s, "%v", err)
		}
		return Spec{Kind: Chain, URL: u, Image: img}, chainPathCheck(s, u)
	}
	return Spec{Kind: Chain, URL: u}, chainPathCheck(s, u)
}

func chainPathCheck(s string, u *url.URL) error {
	if u.Scheme == "tftp" {
		if u.Path == "" || u.Path == "/" {
			return parseErr(s, "tftp URL needs a file path")
		}
		if u.User != nil {
			return parseErr(s, "tftp URL cannot have user info")
		}
	}
	return nil
}

// parseImageOpts reads a root image's fragment: sha256=HEX (or none),
// overlay=SIZE, init=/PATH.
func parseImageOpts(frag string) (ImageOpts, error) {
	o := ImageOpts{Set: true}
	seen := map[string]bool{}
	for _, kv := range strings.FieldsFunc(frag, func(r rune) bool { return r == '&' || r == ',' }) {
		k, v, _ := strings.Cut(kv, "=")
		if seen[k] {
			return o, fmt.Errorf("image setting %s given twice", k)
		}
		seen[k] = true
		switch k {
		case "sha256":
			if strings.EqualFold(v, "none") {
				o.NoDigest = true
				continue
			}
			if len(v) != 64 || strings.Trim(strings.ToLower(v), "0123456789abcdef") != "" {
				return o, fmt.Errorf("sha256=%q is not 64 hex digits (or none, to run the image unchecked)", v)
			}
			o.SHA256 = strings.ToLower(v)
		case "overlay":
			if !validSize(v) {
				return o, fmt.Errorf("overlay=%q: want a size like 512M, 2G or 50%%", v)
			}
			o.Overlay = v
		case "init":
			if err := checkPath(v); err != nil {
				return o, fmt.Errorf("bad init path: %v", err)
			}
			o.Init = v
		default:
			return o, fmt.Errorf("unknown image setting %q (the fragment takes sha256=HEX|none, overlay=SIZE, init=/path)", k)
		}
	}
	if o.Init == "" {
		o.Init = DefaultInit
	}
	return o, nil
}

// validSize accepts what tmpfs's size= takes: a number with an optional
// k, m or g, or a percentage of RAM from 1% to 100%.
func validSize(v string) bool {
	if strings.HasSuffix(v, "%") {
		n := strings.TrimSuffix(v, "%")
		if n == "" || len(n) > 3 || strings.Trim(n, "0123456789") != "" {
			return false
		}
		p := 0
		for _, c := range n {
			p = p*10 + int(c-'0')
		}
		return p >= 1 && p <= 100
	}
	n := strings.TrimRight(v, "kKmMgG")
	if len(v)-len(n) > 1 || n == "" || len(n) > 15 {
		return false
	}
	return strings.Trim(n, "0123456789") == "" && strings.Trim(n, "0") != ""
}

func validPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n > 0 && n < 65536
}

func parseNFSURL(s, v string) (Spec, error) {
	u, err := url.Parse(v)
	if err != nil {
		return Spec{}, parseErr(s, "bad URL: %v", err)
	}
	if u.Opaque != "" || u.Host == "" {
		return Spec{}, parseErr(s, "nfs URL has no host")
	}
	if u.User != nil {
		return Spec{}, parseErr(s, "nfs URL cannot have user info")
	}
	if u.Fragment != "" || strings.Contains(v, "#") {
		return Spec{}, parseErr(s, "nfs URL cannot have a fragment")
	}
	var opts []string
	if p := u.Port(); p != "" {
		if !validPort(p) {
			return Spec{}, parseErr(s, "bad port %q", p)
		}
		opts = append(opts, "port="+p)
	}
	for _, o := range strings.FieldsFunc(u.RawQuery, func(r rune) bool { return r == '&' || r == ',' }) {
		uo, err := url.PathUnescape(o)
		if err != nil {
			return Spec{}, parseErr(s, "bad option %q: %v", o, err)
		}
		opts = append(opts, uo)
	}
	return buildNFS(s, u.Hostname(), strings.HasPrefix(u.Host, "["), u.Path, opts)
}

func parseNFSRoot(s, v string) (Spec, error) {
	var host, rest string
	bracket := false
	if strings.HasPrefix(v, "[") {
		end := strings.Index(v, "]")
		if end < 0 || !strings.HasPrefix(v[end+1:], ":/") {
			return Spec{}, parseErr(s, "want [ipv6]:/export")
		}
		host, rest, bracket = v[1:end], v[end+2:], true
	} else {
		i := strings.Index(v, ":/") // Parse only calls us if present
		host, rest = v[:i], v[i+1:]
	}
	export, optstr, _ := strings.Cut(rest, ",")
	var opts []string
	for _, o := range strings.Split(optstr, ",") {
		if o != "" {
			opts = append(opts, o)
		}
	}
	return buildNFS(s, host, bracket, export, opts)
}

func buildNFS(s, host string, bracket bool, export string, opts []string) (Spec, error) {
	if err := checkServer(host, bracket); err != nil {
		return Spec{}, parseErr(s, "bad NFS server: %v", err)
	}
	if err := checkPath(export); err != nil {
		return Spec{}, parseErr(s, "bad NFS export: %v", err)
	}
	n := NFSSpec{Server: host, Export: export, Version: DefaultNFSVersion, Init: DefaultInit}
	for _, o := range opts {
		if err := checkOption(o); err != nil {
			return Spec{}, parseErr(s, "bad NFS option %q: %v", o, err)
		}
		key, val, hasVal := strings.Cut(o, "=")
		switch {
		case key == "vers" || key == "nfsvers":
			if !validVersion(val) {
				return Spec{}, parseErr(s, "bad NFS version %q (want 3, 4, 4.0, 4.1 or 4.2)", val)
			}
			n.Version = val
		case !hasVal && len(key) > 1 && key[0] == 'v' && validVersion(key[1:]):
			n.Version = key[1:] // kernel short form: v3, v4.2
		case key == "overlay":
			if hasVal {
				return Spec{}, parseErr(s, "overlay takes no value")
			}
			n.Overlay = true
		case key == "init":
			if err := checkPath(val); err != nil {
				return Spec{}, parseErr(s, "bad init path: %v", err)
			}
			n.Init = val
		default:
			n.Options = append(n.Options, o)
		}
	}
	return Spec{Kind: NFS, NFS: n}, nil
}

func validVersion(v string) bool {
	switch v {
	case "3", "4", "4.0", "4.1", "4.2":
		return true
	}
	return false
}

func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || r == ',' {
			return fmt.Errorf("%q contains whitespace, control characters or commas", p)
		}
	}
	return nil
}

// checkOption accepts the characters NFS mount options use in practice.
func checkOption(o string) error {
	if o == "" || o[0] == '=' {
		return errors.New("empty option name")
	}
	for _, c := range o {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.ContainsRune("=._:/-+@~", c):
		default:
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}

// checkServer validates an IPv4/IPv6 address or a host name. bracket says
// whether the host was written in [brackets] (required for IPv6).
func checkServer(h string, bracket bool) error {
	if h == "" {
		return errors.New("missing host")
	}
	if bracket {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is6() {
			return fmt.Errorf("%q is not an IPv6 address", h)
		}
		for _, c := range a.Zone() {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
				return fmt.Errorf("bad IPv6 zone in %q", h)
			}
		}
		return nil
	}
	if strings.Contains(h, ":") {
		return fmt.Errorf("IPv6 address %q must be in brackets", h)
	}
	if a, err := netip.ParseAddr(h); err == nil && a.Is4() {
		return nil
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("bad host name %q", h)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("bad host name %q", h)
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("bad host name %q", h)
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		// All-numeric top label: it was meant to be an IPv4 address.
		return fmt.Errorf("%q is not a valid IPv4 address", h)
	}
	return nil
}

// CmdlineValue returns the value of the ramboot.224 parameter in cmdline
// (the text of /proc/cmdline), following the kernel's quoting rules: a
// parameter may be written "ramboot.224=a b" or ramboot.224="a b". If the
// parameter appears more than once the last one wins; parameters after
// "--" belong to init and are ignored. A bare "ramboot.224" yields ("", true).
func CmdlineValue(cmdline string) (string, bool) {
	return CmdlineParam(cmdline, "ramboot.224")
}

// CmdlineParam is the value of parameter name on a kernel command line,
// parsed as the kernel does (see CmdlineValue); the last one wins.
func CmdlineParam(cmdline, name string) (string, bool) {
	vals := CmdlineParams(cmdline, name)
	if len(vals) == 0 {
		return "", false
	}
	return vals[len(vals)-1], true
}

// CmdlineParams lists every value of parameter name, in order (console=
// may be given several times).
func CmdlineParams(cmdline, name string) []string {
	var vals []string
	args := cmdline
	for {
		args = strings.TrimLeft(args, " \t\n\r\v\f")
		if args == "" {
			break
		}
		param, v, hasVal, rest := nextArg(args)
		args = rest
		if param == "--" && !hasVal {
			break
		}
		if param == name {
			vals = append(vals, v)
		}
	}
	return vals
}

// nextArg mirrors lib/cmdline.c:next_arg in the kernel.
func nextArg(args string) (param, val string, hasVal bool, rest string) {
	quoted, inQuote := false, false
	start := 0
	if args[0] == '"' {
		start, inQuote, quoted = 1, true, true
	}
	equals := -1
	i := start
	for ; i < len(args); i++ {
		c := args[i]
		if isSpace(c) && !inQuote {
			break
		}
		if equals < 0 && c == '=' {
			equals = i
		}
		if c == '"' {
			inQuote = !inQuote
		}
	}
	tok := args[start:i]
	rest = args[i:]
	// Strip a closing quote at the end of the token.
	trimQuote := func(s string) string {
		if strings.HasSuffix(s, `"`) {
			return s[:len(s)-1]
		}
		return s
	}
	if equals < 0 {
		if quoted {
			tok = trimQuote(tok)
		}
		return tok, "", false, rest
	}
	param = args[start:equals]
	val = args[equals+1 : i]
	if strings.HasPrefix(val, `"`) {
		val = trimQuote(val[1:])
	} else if quoted {
		val = trimQuote(val)
	}
	return param, val, true, rest
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
