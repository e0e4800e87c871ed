package eeprom

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A Setting is one KEY=VALUE line of the bootloader config.
type Setting struct {
	Key, Value string
}

func (s Setting) String() string { return s.Key + "=" + s.Value }

// ParseSetting parses KEY=VALUE.
func ParseSetting(kv string) (Setting, error) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return Setting{}, fmt.Errorf("%q is not KEY=VALUE", kv)
	}
	s := Setting{Key: strings.TrimSpace(k), Value: strings.TrimSpace(v)}
	return s, ValidateSetting(s)
}

// configLine describes one line of a config file.
type configLine struct {
	global bool   // in the part every board reads: before any [filter] or under [all]
	header bool   // a [filter] line
	all    bool   // the [all] line
	blank  bool   // empty or only a comment
	key    string // "" unless a KEY=VALUE line
}

func scanConfig(lines []string) []configLine {
	out := make([]configLine, len(lines))
	global := true
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "["):
			global = strings.EqualFold(t, "[all]")
			out[i] = configLine{header: true, all: global}
		case t == "" || strings.HasPrefix(t, "#"):
			out[i] = configLine{global: global, blank: t == ""}
		default:
			k, _, ok := strings.Cut(t, "=")
			if !ok {
				k = ""
			}
			out[i] = configLine{global: global, key: strings.TrimSpace(k)}
		}
	}
	return out
}

func splitLines(text string) (lines []string, trailingNewline bool) {
	if text == "" {
		return nil, true
	}
	trailingNewline = strings.HasSuffix(text, "\n")
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n"), trailingNewline
}

// MergeConfig returns old with set applied. A key already set in the part of
// the config every board reads (before the first [filter] line, or under
// [all]) gets the new value in place, on every such line; comments, order
// and the [filter] sections stay as they were. Keys not set there are added
// after the last KEY=VALUE line of the first such part that has one (or
// after the first [all] line, or at the top). For a key given twice in set,
// the last value wins.
func MergeConfig(old string, set []Setting) string {
	lines, trailing := splitLines(old)
	meta := scanConfig(lines)
	want := map[string]string{}
	var order []string
	for _, s := range set {
		if _, dup := want[s.Key]; !dup {
			order = append(order, s.Key)
		}
		want[s.Key] = s.Value
	}
	found := map[string]bool{}
	for i, m := range meta {
		if v, ok := want[m.key]; ok && m.global {
			lines[i] = m.key + "=" + v
			found[m.key] = true
		}
	}
	var add []string
	for _, k := range order {
		if !found[k] {
			add = append(add, k+"="+want[k])
		}
	}
	if len(add) > 0 {
		at := insertPoint(meta)
		lines = append(lines[:at], append(add, lines[at:]...)...)
	}
	out := strings.Join(lines, "\n")
	if trailing && len(lines) > 0 {
		out += "\n"
	}
	return out
}

func insertPoint(meta []configLine) int {
	// After the last key line of the first global part that has keys.
	for i := 0; i < len(meta); {
		if meta[i].header || !meta[i].global {
			i++
			continue
		}
		last, j := -1, i
		for ; j < len(meta) && !meta[j].header; j++ {
			if meta[j].key != "" {
				last = j
			}
		}
		if last >= 0 {
			return last + 1
		}
		i = j
	}
	// Else right after the first [all] line.
	for i, m := range meta {
		if m.all {
			return i + 1
		}
	}
	// Else after what comes before the first [filter] line.
	top := 0
	for i, m := range meta {
		if m.header {
			break
		}
		if !m.blank {
			top = i + 1
		}
	}
	return top
}

// Lookup returns the value the config gives key for every board: the last
// KEY=VALUE line for it before the first [filter] line or under [all].
func Lookup(config, key string) (string, bool) {
	lines, _ := splitLines(config)
	meta := scanConfig(lines)
	val, ok := "", false
	for i, m := range meta {
		if m.global && m.key == key {
			_, v, _ := strings.Cut(lines[i], "=")
			val, ok = strings.TrimSpace(v), true
		}
	}
	return val, ok
}

var keyRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// ValidateSetting checks a setting's key and, for the settings a network
// boot needs, its value:
//
//   - BOOT_ORDER: hex, 0x then 1 to 8 boot modes read right to left (see
//     BootOrderModes);
//   - TFTP_IP, CLIENT_IP, GATEWAY: an IPv4 address, SUBNET: an IPv4 mask
//     (empty unsets any of them);
//   - TFTP_PREFIX: 0 (serial number), 1 (TFTP_PREFIX_STR) or 2 (MAC address);
//   - TFTP_PREFIX_STR: at most 32 characters;
//   - HTTP_HOST, HTTP_PORT, HTTP_PATH, HTTP_CACERT_HASH: see ValidateHTTP.
func ValidateSetting(s Setting) error {
	if !keyRE.MatchString(s.Key) {
		return fmt.Errorf("%q is not a bootloader setting name: they are upper case, like BOOT_ORDER", s.Key)
	}
	if strings.ContainsAny(s.Value, "\r\n\x00") {
		return fmt.Errorf("%s: the value has a line break or NUL", s.Key)
	}
	switch s.Key {
	case "BOOT_ORDER":
		_, err := BootOrderModes(s.Value)
		return err
	case "TFTP_IP", "CLIENT_IP", "GATEWAY", "SUBNET":
		if s.Value == "" {
			return nil
		}
		a, err := netip.ParseAddr(s.Value)
		if err != nil || !a.Is4() {
			return fmt.Errorf("%s=%s: want a dotted IPv4 address like 192.168.1.10 (the bootloader has no IPv6)", s.Key, s.Value)
		}
		if s.Key == "SUBNET" {
			b := a.As4()
			if _, bits := net.IPMask(b[:]).Size(); bits == 0 {
				return fmt.Errorf("SUBNET=%s is not a netmask: want contiguous ones like 255.255.255.0", s.Value)
			}
		}
	case "TFTP_PREFIX":
		if s.Value != "0" && s.Value != "1" && s.Value != "2" {
			return fmt.Errorf("TFTP_PREFIX=%s: want 0 (serial number directory), 1 (TFTP_PREFIX_STR) or 2 (MAC address directory)", s.Value)
		}
	case "TFTP_PREFIX_STR":
		if len(s.Value) > 32 {
			return fmt.Errorf("TFTP_PREFIX_STR is %d characters; the bootloader takes at most 32", len(s.Value))
		}
	case "HTTP_HOST", "HTTP_PORT", "HTTP_PATH", "HTTP_CACERT_HASH":
		return ValidateHTTP(s)
	}
	return nil
}

// ValidateHTTP checks the settings of HTTP boot (boot mode 7), which
// fetches http://HTTP_HOST:HTTP_PORT/HTTP_PATH/boot.img and boot.sig
// (eeprom-bootloader.adoc):
//
//   - HTTP_HOST: a dotted IPv4 address, or a host name of lower-case
//     letters, digits, '-' and '.' (the bootloader silently ignores any
//     other name and fetches from Raspberry Pi's own server instead); no
//     scheme, port or slash. Empty unsets it.
//   - HTTP_PORT: a decimal port, 1 to 65535, without leading zeros.
//   - HTTP_PATH: not empty; no leading or trailing '/' (the bootloader
//     adds them), no "//", no "." or ".." segment, nothing outside
//     [A-Za-z0-9._~/-] (so no spaces).
//   - HTTP_CACERT_HASH: 64 hex digits (a SHA-256); empty unsets it.
//
// Any other setting passes.
func ValidateHTTP(s Setting) error {
	v := s.Value
	switch s.Key {
	case "HTTP_HOST":
		return validateHTTPHost(v)
	case "HTTP_PORT":
		n, err := strconv.Atoi(v)
		if v == "" || strings.TrimLeft(v, "0123456789") != "" || err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("HTTP_PORT=%s: want a port number from 1 to 65535 (ramboot serve's HTTP port is 8080; the bootloader's default is 80)", v)
		}
		if v[0] == '0' {
			return fmt.Errorf("HTTP_PORT=%s: write the port without leading zeros: HTTP_PORT=%d", v, n)
		}
	case "HTTP_PATH":
		switch {
		case v == "":
			return fmt.Errorf("HTTP_PATH is empty: want the directory of boot.img on the server, like rpi4 (ramboot serve answers /<board>/boot.img)")
		case strings.ContainsAny(v, " \t"):
			return fmt.Errorf("HTTP_PATH=%q has a space or tab: the bootloader puts the path into its request line as it is; use a path without spaces, like rpi4", v)
		case strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/"):
			return fmt.Errorf("HTTP_PATH=%s: leave out the leading and trailing '/': the bootloader adds them (http://HOST:PORT/HTTP_PATH/boot.img) and ramboot serve answers no other form: HTTP_PATH=%s", v, strings.Trim(v, "/"))
		case strings.Contains(v, "//"):
			return fmt.Errorf("HTTP_PATH=%s has an empty segment (//): ramboot serve answers only clean paths, and never redirects (the bootloader does not follow redirects)", v)
		}
		for _, seg := range strings.Split(v, "/") {
			if seg == "." || seg == ".." {
				return fmt.Errorf("HTTP_PATH=%s has a %q segment: ramboot serve answers only clean paths, and never redirects (the bootloader does not follow redirects)", v, seg)
			}
		}
		if i := strings.IndexFunc(v, func(r rune) bool { return !pathChar(r) }); i >= 0 {
			return fmt.Errorf("HTTP_PATH=%s: %q is not allowed: use letters, digits and . _ ~ - / (the path goes into the URL unescaped)", v, firstRune(v[i:]))
		}
	case "HTTP_CACERT_HASH":
		if v == "" {
			return nil
		}
		if len(v) != 64 || strings.Trim(strings.ToLower(v), "0123456789abcdef") != "" {
			return fmt.Errorf("HTTP_CACERT_HASH=%s: want the SHA-256 of the CA certificate, 64 hex digits (sha256sum cacert.der)", v)
		}
	}
	return nil
}

// HTTPBootURL returns the URL of boot.img that config points HTTP boot at,
// http://HTTP_HOST:HTTP_PORT/HTTP_PATH/boot.img with the bootloader's
// defaults (port 80, path net_install; https and port 443 when
// HTTP_CACERT_HASH is set), and false when config sets no HTTP_HOST (then
// the bootloader fetches Raspberry Pi's network-install image over HTTPS).
func HTTPBootURL(config string) (string, bool) {
	host, _ := Lookup(config, "HTTP_HOST")
	if host == "" {
		return "", false
	}
	scheme, port := "http", "80"
	if h, _ := Lookup(config, "HTTP_CACERT_HASH"); h != "" {
		scheme, port = "https", "443"
	}
	if p, _ := Lookup(config, "HTTP_PORT"); p != "" {
		port = p
	}
	path, ok := Lookup(config, "HTTP_PATH")
	if !ok || path == "" {
		path = "net_install"
	}
	return scheme + "://" + host + ":" + port + "/" + path + "/boot.img", true
}

func firstRune(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	return string(r)
}

func pathChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._~/-", r)
}

// validateHTTPHost applies the bootloader's rule for HTTP_HOST
// (eeprom-bootloader.adoc): "Invalid host names will be ignored. They
// should only contain lower case alphanumeric characters and - or .", "You
// can specify an IP address", "Don't include the HTTP scheme or any forward
// slashes". An ignored name is silent: the Pi then asks Raspberry Pi's
// server, so every name that would be ignored is refused here.
func validateHTTPHost(v string) error {
	if v == "" {
		return nil
	}
	if scheme, rest, ok := strings.Cut(v, "://"); ok {
		return fmt.Errorf("HTTP_HOST=%s: give the host alone, without %s:// (the bootloader always uses plain HTTP with HTTP_HOST set): HTTP_HOST=%s", v, scheme, strings.SplitN(rest, "/", 2)[0])
	}
	if strings.Contains(v, "/") {
		return fmt.Errorf("HTTP_HOST=%s: give the host alone, without a path; the path goes in HTTP_PATH (--http-path)", v)
	}
	if h, p, ok := strings.Cut(v, ":"); ok && !strings.Contains(p, ":") {
		return fmt.Errorf("HTTP_HOST=%s: give the host alone; the port goes in HTTP_PORT (--http-port): HTTP_HOST=%s HTTP_PORT=%s", v, h, p)
	}
	if a, err := netip.ParseAddr(v); err == nil {
		if !a.Is4() {
			return fmt.Errorf("HTTP_HOST=%s: want a dotted IPv4 address or a host name (the bootloader has no IPv6)", v)
		}
		return nil
	}
	if strings.Trim(v, "0123456789.") == "" {
		return fmt.Errorf("HTTP_HOST=%s is not an IPv4 address: want four numbers 0-255 without leading zeros, like 192.168.1.10", v)
	}
	if lower := strings.ToLower(v); lower != v {
		return fmt.Errorf("HTTP_HOST=%s has upper-case letters: the bootloader silently ignores such a name and fetches from Raspberry Pi's own server instead; write it in lower case: HTTP_HOST=%s", v, lower)
	}
	if len(v) > 253 {
		return fmt.Errorf("HTTP_HOST is %d characters; a host name has at most 253", len(v))
	}
	for _, label := range strings.Split(v, ".") {
		if i := strings.IndexFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
		}); i >= 0 {
			return fmt.Errorf("HTTP_HOST=%s: %q is not allowed: the bootloader takes only lower-case letters, digits, '-' and '.' in a host name, and silently ignores any other (then fetching from Raspberry Pi's own server); use an IPv4 address or such a name", v, firstRune(label[i:]))
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("HTTP_HOST=%s is not a host name: each dot-separated part must be 1 to 63 characters and may not begin or end with '-'", v)
		}
	}
	return nil
}

// BootMode names a BOOT_ORDER nibble (eeprom-bootloader.adoc).
var BootMode = map[uint32]string{
	0x1: "SD card",
	0x2: "network",
	0x3: "RPIBOOT",
	0x4: "USB mass storage",
	0x5: "BCM-USB-MSD",
	0x6: "NVMe",
	0x7: "HTTP",
	0xe: "stop",
	0xf: "restart",
}

// BootOrderModes checks a BOOT_ORDER value and returns its modes in the
// order the bootloader tries them: nibbles from the right. It must be hex
// with a 0x prefix and at most 8 digits; 0x0 (SD CARD DETECT) is refused as
// deprecated, 0x8-0xd as undefined, and modes after 0xe (STOP) or 0xf
// (RESTART) as never reached.
func BootOrderModes(v string) ([]uint32, error) {
	hex, ok := strings.CutPrefix(strings.ToLower(v), "0x")
	if !ok || hex == "" {
		return nil, fmt.Errorf("BOOT_ORDER=%s: want hex like 0xf21 (read right to left: 1 SD card, 2 network, f restart)", v)
	}
	n, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		return nil, fmt.Errorf("BOOT_ORDER=%s: want at most 8 hex digits like 0xf21", v)
	}
	if n == 0 {
		return nil, fmt.Errorf("BOOT_ORDER=%s has no boot mode; for network boot use 0xf21 (SD card, then network, repeat) or 0xf2 (network only, repeat)", v)
	}
	var modes []uint32
	for ; n != 0; n >>= 4 {
		m := uint32(n & 0xf)
		if len(modes) > 0 && (modes[len(modes)-1] == 0xe || modes[len(modes)-1] == 0xf) {
			return nil, fmt.Errorf("BOOT_ORDER=%s: mode 0x%x comes after 0x%x (%s) and is never tried; 0xe and 0xf go last (leftmost)", v, m, modes[len(modes)-1], BootMode[modes[len(modes)-1]])
		}
		switch {
		case m == 0:
			return nil, fmt.Errorf("BOOT_ORDER=%s: mode 0x0 (SD CARD DETECT) is deprecated; use 0xf (restart) to loop", v)
		case BootMode[m] == "":
			return nil, fmt.Errorf("BOOT_ORDER=%s: 0x%x is not a boot mode (1 SD card, 2 network, 3 RPIBOOT, 4 USB, 5 BCM-USB-MSD, 6 NVMe, 7 HTTP, e stop, f restart)", v, m)
		}
		modes = append(modes, m)
	}
	return modes, nil
}

// DescribeBootOrder says what a valid BOOT_ORDER does, like "SD card, then
// network, then restart".
func DescribeBootOrder(v string) string {
	modes, err := BootOrderModes(v)
	if err != nil {
		return err.Error()
	}
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = BootMode[m]
	}
	return strings.Join(names, ", then ")
}
