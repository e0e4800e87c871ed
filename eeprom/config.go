package eeprom

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
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
//   - TFTP_PREFIX_STR: at most 32 characters.
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
