package bootspec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// keys= and seed= carry the digests of what they fetch: one for keys, two
// (user-data, meta-data) for seed. The URLs are kept without the fragment.
func TestParseFileDigests(t *testing.T) {
	const (
		k = "1111111111111111111111111111111111111111111111111111111111111111"
		u = "2222222222222222222222222222222222222222222222222222222222222222"
		m = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	)
	base := InstallSpec{URL: mustURL("http://192.0.2.1/i.img"), NoDigest: true, Disk: "auto", Grow: true, Then: "reboot"}
	with := func(f func(*InstallSpec)) Spec {
		in := base
		f(&in)
		return Spec{Kind: Install, Install: in}
	}
	for _, tt := range []struct {
		in   string
		want Spec
		str  string // String(), when it differs from in
	}{
		{in: "install:http://192.0.2.1/i.img#sha256=none&keys=http://192.0.2.1/k#sha256=" + k,
			want: with(func(in *InstallSpec) { in.Keys, in.KeysSHA256 = mustURL("http://192.0.2.1/k"), k })},
		{in: "install:http://192.0.2.1/i.img#sha256=none&seed=http://192.0.2.1/seed/n1/#sha256=" + u + "," + m,
			want: with(func(in *InstallSpec) {
				in.Seed, in.SeedSHA256 = mustURL("http://192.0.2.1/seed/n1/"), [2]string{u, m}
			})},
		// Upper case, comma-separated settings, seed before keys, then more
		// settings after the digests: the writer puts them in its order.
		{in: "install:http://192.0.2.1/i.img#sha256=none,seed=tftp://192.0.2.1/s#sha256=" + strings.ToUpper(u) + "," + strings.ToUpper(m) +
			",keys=https://192.0.2.1/k#sha256=" + strings.ToUpper(k) + ",then=local",
			want: with(func(in *InstallSpec) {
				in.Keys, in.KeysSHA256 = mustURL("https://192.0.2.1/k"), k
				in.Seed, in.SeedSHA256 = mustURL("tftp://192.0.2.1/s"), [2]string{u, m}
				in.Then = "local"
			}),
			str: "install:http://192.0.2.1/i.img#sha256=none&keys=https://192.0.2.1/k#sha256=" + k + "&seed=tftp://192.0.2.1/s#sha256=" + u + "," + m + "&then=local"},
		// With and without: keys checked, seed not.
		{in: "install:http://192.0.2.1/i.img#sha256=none&keys=http://192.0.2.1/k#sha256=" + k + "&seed=http://192.0.2.1/s&gen=3",
			want: with(func(in *InstallSpec) {
				in.Keys, in.KeysSHA256 = mustURL("http://192.0.2.1/k"), k
				in.Seed = mustURL("http://192.0.2.1/s")
				in.Gen = 3
			})},
	} {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if d := cmp.Diff(tt.want, got, urlCmp); d != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, d)
		}
		str := tt.str
		if str == "" {
			str = tt.in
		}
		if got.String() != str {
			t.Errorf("Parse(%q).String() =\n %q, want\n %q", tt.in, got.String(), str)
		}
		again, err := Parse(got.String())
		if err != nil {
			t.Errorf("Parse(String() = %q): %v", got.String(), err)
		} else if d := cmp.Diff(got, again, urlCmp); d != "" {
			t.Errorf("round trip of %q via %q (-first +second):\n%s", tt.in, got.String(), d)
		}
	}
}

func TestParseFileDigestErrors(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	pre := "install:http://h/i#sha256=none&"
	for _, tt := range []struct{ in, want string }{
		{pre + "keys=http://h/k#sha256=abc", `"abc" is not 64 hex digits: want keys=URL#sha256=HEX`},
		{pre + "keys=http://h/k#sha256=" + h[:63] + "g", "is not 64 hex digits"},
		{pre + "keys=http://h/k#sha256=", `"" is not 64 hex digits`},
		{pre + "keys=http://h/k#md5=" + h[:32], "after # want keys=URL#sha256=HEX, the SHA-256 of the authorized_keys file"},
		{pre + "keys=http://h/k#", "after # want keys=URL#sha256=HEX"},
		{pre + "keys=http://h/k#sha256=" + h + "," + h, "keys takes one digest, 2 given"},
		{pre + "seed=http://h/s#sha256=" + h, "seed takes two digests, 1 given: want seed=URL#sha256=UHEX,MHEX, the SHA-256 of user-data then meta-data"},
		{pre + "seed=http://h/s#sha256=" + h + "," + h + "," + h, "seed takes two digests, 3 given"},
		{pre + "seed=http://h/s#sha256=" + h + ",xyz", `"xyz" is not 64 hex digits: want seed=URL#sha256=UHEX,MHEX`},
		{pre + "seed=http://h/s#sha256=" + h + ",,", "seed takes two digests, 1 given"},
		// The second digest belongs to the seed only after a comma.
		{pre + "seed=http://h/s#sha256=" + h + "&" + h, "seed takes two digests, 1 given"},
		{pre + "seed=/s#sha256=" + h + "," + h, `seed="/s": want an http://, https:// or tftp:// URL`},
		{pre + "keys=http://h/k#sha256=" + h + "&keys=http://h/k", "given twice"},
	} {
		_, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}
