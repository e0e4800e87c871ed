package bootspec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseLifecycle(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Spec
	}{
		{"local", Spec{Kind: Local}},
		{"LOCAL", Spec{Kind: Local}},
		{"local:/dev/mmcblk0", Spec{Kind: Local, Local: LocalSpec{Target: "/dev/mmcblk0"}}},
		{"local:/dev/disk/by-id/nvme-Samsung_1", Spec{Kind: Local, Local: LocalSpec{Target: "/dev/disk/by-id/nvme-Samsung_1"}}},
		{"local:PARTUUID=6c586e13-02", Spec{Kind: Local, Local: LocalSpec{Target: "PARTUUID=6c586e13-02"}}},
		{"local:LABEL=bootfs", Spec{Kind: Local, Local: LocalSpec{Target: "LABEL=bootfs"}}},
		{"install:http://192.0.2.1:8080/images/deb.img.gz#sha256=" + strings.ToUpper(hex64),
			Spec{Kind: Install, Install: InstallSpec{URL: mustURL("http://192.0.2.1:8080/images/deb.img.gz"), SHA256: hex64, Disk: "auto", Grow: true, Then: "reboot"}}},
		{"install:tftp://192.0.2.1/i.img#sha256=none,disk=/dev/vda,hostname=n1,keys=http://192.0.2.1/k,seed=http://192.0.2.1/seed/n1/,grow=0,then=local",
			Spec{Kind: Install, Install: InstallSpec{URL: mustURL("tftp://192.0.2.1/i.img"), NoDigest: true, Disk: "/dev/vda", Hostname: "n1",
				Keys: mustURL("http://192.0.2.1/k"), Seed: mustURL("http://192.0.2.1/seed/n1/"), Grow: false, Then: "local"}}},
		{"install:http://192.0.2.1/i.img#sha256=none&gen=7",
			Spec{Kind: Install, Install: InstallSpec{URL: mustURL("http://192.0.2.1/i.img"), NoDigest: true, Disk: "auto", Grow: true, Then: "reboot", Gen: 7}}},
		{"install:http://192.0.2.1/i.img#sha256=none&gen=0",
			Spec{Kind: Install, Install: InstallSpec{URL: mustURL("http://192.0.2.1/i.img"), NoDigest: true, Disk: "auto", Grow: true, Then: "reboot"}}},
		{"install:http://192.0.2.1/i.img#gen=999999999,sha256=none",
			Spec{Kind: Install, Install: InstallSpec{URL: mustURL("http://192.0.2.1/i.img"), NoDigest: true, Disk: "auto", Grow: true, Then: "reboot", Gen: MaxGen}}},
	} {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if d := cmp.Diff(tt.want, got, urlCmp); d != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, d)
		}
		again, err := Parse(got.String())
		if err != nil {
			t.Errorf("Parse(String() = %q): %v", got.String(), err)
		} else if d := cmp.Diff(got, again, urlCmp); d != "" {
			t.Errorf("round trip of %q via %q (-first +second):\n%s", tt.in, got.String(), d)
		}
	}
}

func TestParseLifecycleErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"local:", "name a disk or partition"},
		{"local:vda", "name a disk or partition"},
		{"local:/dev/", "want a device"},
		{"local:/dev/../etc/shadow", "want a device"},
		{"local:UUID=", "empty"},
		{"install:http://h/i.img", "needs #sha256"},
		{"install:http://h/i.img#sha256=abc", "not 64 hex"},
		{"install:ftp://h/i.img#sha256=none", "http://, https:// or tftp://"},
		{"install:http://h/#sha256=none", "needs a file path"},
		{"install:http://h/i#sha256=none&disk=vda", "disk=\"vda\""},
		{"install:http://h/i#sha256=none&disk=/dev/../x", "disk="},
		{"install:http://h/i#sha256=none&disk=/dev/disk/by-uuid/1234", "no udev"},
		{"install:http://h/i#sha256=none&disk=/dev/disk/by-id/", "no udev"},
		{"local:/dev/disk/by-partuuid/1234-01", "no udev"},
		{"local:/dev/disk/by-id/a/b", "no udev"},
		{"install:http://h/i#sha256=none&hostname=-bad", "hostname="},
		{"install:http://h/i#sha256=none&keys=/k", "keys="},
		{"install:http://h/i#sha256=none&then=poweroff", "then="},
		{"install:http://h/i#sha256=none&grow=maybe", "grow="},
		{"install:http://h/i#sha256=none&color=red", "unknown install setting"},
		{"install:http://h/i#sha256=none&sha256=none", "given twice"},
		{"install:http://h/i#sha256=none&gen=", "gen=\"\""},
		{"install:http://h/i#sha256=none&gen=-1", "gen=\"-1\""},
		{"install:http://h/i#sha256=none&gen=01", "gen=\"01\""},
		{"install:http://h/i#sha256=none&gen=+1", "gen=\"+1\""},
		{"install:http://h/i#sha256=none&gen=1000000000", "gen=\"1000000000\""},
		{"install:http://h/i#sha256=none&gen=1&gen=2", "given twice"},
	} {
		_, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

// The install form's writer puts gen= last, and only when it is set: the
// form the server renders and the one the init parses agree.
func TestInstallGenString(t *testing.T) {
	in := InstallSpec{URL: mustURL("http://192.0.2.1/i.img"), SHA256: hex64, Disk: "auto", Grow: true, Then: "local", Gen: 12}
	if got, want := in.String(), "install:http://192.0.2.1/i.img#sha256="+hex64+"&then=local&gen=12"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	in.Gen = 0
	if got := in.String(); strings.Contains(got, "gen=") {
		t.Errorf("String() with no generation = %q, want no gen=", got)
	}
}
