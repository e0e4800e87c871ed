package bootspec

import (
	"strings"
	"testing"
)

func TestImageFragment(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in   string
		want ImageOpts
		err  string
	}{
		{"http://192.0.2.1:8080/images/debian.squashfs", ImageOpts{}, ""},
		{"http://h/i.squashfs#sha256=" + strings.ToUpper(sum), ImageOpts{Set: true, SHA256: sum, Init: DefaultInit}, ""},
		{"http://h/i.squashfs#sha256=none&overlay=512M&init=/lib/systemd/systemd", ImageOpts{Set: true, NoDigest: true, Overlay: "512M", Init: "/lib/systemd/systemd"}, ""},
		{"tftp://h/i.squashfs#overlay=50%,sha256=" + sum, ImageOpts{Set: true, SHA256: sum, Overlay: "50%", Init: DefaultInit}, ""},
		{"http://h/i.squashfs#", ImageOpts{Set: true, Init: DefaultInit}, ""},
		{"http://h/i.squashfs#sha256=abc", ImageOpts{}, "not 64 hex digits"},
		{"http://h/i.squashfs#overlay=lots", ImageOpts{}, "want a size like 512M"},
		{"http://h/i.squashfs#overlay=0", ImageOpts{}, "want a size"},
		{"http://h/i.squashfs#overlay=101%", ImageOpts{}, "want a size"},
		{"http://h/i.squashfs#init=sbin/init", ImageOpts{}, "not an absolute path"},
		{"http://h/i.squashfs#size=1G", ImageOpts{}, `unknown image setting "size"`},
		{"http://h/i.squashfs#sha256=none&sha256=" + sum, ImageOpts{}, "given twice"},
	} {
		s, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %+v, %v; want error with %q", tc.in, s, err, tc.err)
			}
			continue
		}
		if err != nil || s.Kind != Chain || s.Image != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want image %+v", tc.in, s, err, tc.want)
			continue
		}
		// String gives it back in a form that parses to the same.
		if back, err := Parse(s.String()); err != nil || back.Image != s.Image {
			t.Errorf("round trip of %q: %q -> %+v, %v", tc.in, s.String(), back.Image, err)
		}
	}
}
