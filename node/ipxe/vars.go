package ipxe

import (
	"encoding/hex"
	"strings"
)

// expand replaces ${name} and ${name:type} in s. Nested references such
// as ${${x}} are expanded innermost first, as iPXE does, but substituted
// values are not expanded again (so a hostile value cannot recurse). An
// unterminated "${" is kept literally.
func (in *interp) expand(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	// stack[0] is the output; each open "${" pushes a name buffer.
	stack := []*strings.Builder{{}}
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			stack = append(stack, &strings.Builder{})
			i++
		case s[i] == '}' && len(stack) > 1:
			name := stack[len(stack)-1].String()
			stack = stack[:len(stack)-1]
			stack[len(stack)-1].WriteString(in.lookup(name))
		default:
			stack[len(stack)-1].WriteByte(s[i])
		}
	}
	out := stack[0]
	for _, b := range stack[1:] {
		out.WriteString("${")
		out.WriteString(b.String())
	}
	return out.String()
}

// lookup returns the value of a setting reference such as "mac",
// "net0/mac" or "mac:hexhyp". An exact match in the variables wins
// (callers may provide "mac:hexhyp" themselves); otherwise the settings
// scope ("net0/") is dropped if needed and the value is formatted per the
// type. Unknown settings are empty.
func (in *interp) lookup(ref string) string {
	if v, ok := in.vars[ref]; ok {
		return v
	}
	name, typ, _ := strings.Cut(ref, ":")
	v, ok := in.vars[name]
	if !ok {
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			v = in.vars[name[i+1:]]
		}
	}
	return format(v, typ)
}

func format(v, typ string) string {
	switch typ {
	case "hex":
		return hexJoin(v, ":")
	case "hexhyp":
		return hexJoin(v, "-")
	case "hexraw":
		return hexJoin(v, "")
	case "uristring":
		return uriEncode(v)
	}
	return v // "", string, ipv4, uint8, ... are stored as text already
}

// hexJoin formats v as hex bytes joined by sep. If v already looks like
// hex bytes separated by ':' or '-' (a MAC address) those bytes are used,
// otherwise the bytes of the string itself.
func hexJoin(v, sep string) string {
	b := []byte(v)
	if parts := strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == '-' }); len(parts) > 1 {
		var raw []byte
		for _, p := range parts {
			x, err := hex.DecodeString(p)
			if err != nil || len(x) != 1 {
				raw = nil
				break
			}
			raw = append(raw, x[0])
		}
		if raw != nil && len(v) == 3*len(raw)-1 {
			b = raw
		}
	}
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, sep)
}

// uriEncode percent-encodes everything but RFC 3986 unreserved characters.
func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}
