package modules

import "strings"

// normalizeAlias normalises an alias or alias pattern as kmod does: '-'
// becomes '_', except inside a [...] bracket expression.
func normalizeAlias(s string) string {
	if !strings.Contains(s, "-") {
		return s
	}
	b := []byte(s)
	inBracket := false
	for i, c := range b {
		switch {
		case inBracket:
			if c == ']' {
				inBracket = false
			}
		case c == '[':
			inBracket = true
		case c == '-':
			b[i] = '_'
		}
	}
	return string(b)
}

// isPattern reports whether an alias contains glob metacharacters.
func isPattern(s string) bool { return strings.ContainsAny(s, "*?[") }

// globMatch reports whether name matches the fnmatch(3)-style pattern (with
// no flags, as kmod uses it): '*' matches any run of characters (including
// '/'), '?' one character, "[...]" a set with ranges and '!' or '^'
// negation. A malformed bracket matches literally.
func globMatch(pattern, name string) bool {
	// Iterative matcher with single-star backtracking; linear in practice.
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				p++
				n++
				continue
			case '[':
				if ok, width := matchBracket(pattern[p:], name[n]); width > 0 {
					if ok {
						p += width
						n++
						continue
					}
				} else if name[n] == '[' {
					p++
					n++
					continue
				}
			default:
				if c == name[n] {
					p++
					n++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchBracket matches c against the bracket expression at the start of
// pat. width is the length of the expression, or 0 if it is not closed.
func matchBracket(pat string, c byte) (ok bool, width int) {
	i := 1
	negate := false
	if i < len(pat) && (pat[i] == '!' || pat[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pat) {
		lo := pat[i]
		if lo == ']' && !first {
			return ok != negate, i + 1
		}
		first = false
		hi := lo
		if i+2 < len(pat) && pat[i+1] == '-' && pat[i+2] != ']' {
			hi = pat[i+2]
			i += 3
		} else {
			i++
		}
		if lo <= c && c <= hi {
			ok = true
		}
	}
	return false, 0
}
