package bootspec

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// urlCmp compares URLs by their string form.
var urlCmp = cmp.Comparer(func(a, b *url.URL) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.String() == b.String()
})

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func nfs(server, export string, mod func(*NFSSpec)) Spec {
	n := NFSSpec{Server: server, Export: export, Version: "3", Init: "/sbin/init"}
	if mod != nil {
		mod(&n)
	}
	return Spec{Kind: NFS, NFS: n}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Spec
	}{
		{"", Spec{Kind: Shell}},
		{"   \t\n", Spec{Kind: Shell}},
		{"shell", Spec{Kind: Shell}},
		{" SHELL ", Spec{Kind: Shell}},
		{"http://10.0.0.1/boot.ipxe", Spec{Kind: Chain, URL: mustURL("http://10.0.0.1/boot.ipxe")}},
		{"https://boot.example.com:8443/pi/${mac}.ipxe?x=1", Spec{Kind: Chain, URL: mustURL("https://boot.example.com:8443/pi/${mac}.ipxe?x=1")}},
		{"HTTP://host", Spec{Kind: Chain, URL: mustURL("http://host")}},
		{"tftp://10.0.0.1/pi/boot.ipxe", Spec{Kind: Chain, URL: mustURL("tftp://10.0.0.1/pi/boot.ipxe")}},
		{"http://[fd00::1]:8080/a", Spec{Kind: Chain, URL: mustURL("http://[fd00::1]:8080/a")}},
		{"nfs://10.0.0.1/srv/root", nfs("10.0.0.1", "/srv/root", nil)},
		{"nfs://nas.lan/srv/root?vers=4.2&overlay&init=/lib/systemd/systemd&ro", nfs("nas.lan", "/srv/root", func(n *NFSSpec) {
			n.Version, n.Overlay, n.Init, n.Options = "4.2", true, "/lib/systemd/systemd", []string{"ro"}
		})},
		{"nfs://nas/srv/root?vers=3,overlay", nfs("nas", "/srv/root", func(n *NFSSpec) { n.Overlay = true })},
		{"nfs://nas:2049/export?proto=tcp&nolock", nfs("nas", "/export", func(n *NFSSpec) { n.Options = []string{"port=2049", "proto=tcp", "nolock"} })},
		{"nfs://[fd00::5]/export?vers=4", nfs("fd00::5", "/export", func(n *NFSSpec) { n.Version = "4" })},
		{"10.0.0.1:/srv/root", nfs("10.0.0.1", "/srv/root", nil)},
		{"10.0.0.1:/srv/root,vers=4.1,overlay,init=/bin/sh,rsize=8192,wsize=8192,ro", nfs("10.0.0.1", "/srv/root", func(n *NFSSpec) {
			n.Version, n.Overlay, n.Init, n.Options = "4.1", true, "/bin/sh", []string{"rsize=8192", "wsize=8192", "ro"}
		})},
		{"nas.example:/export,,nfsvers=4,", nfs("nas.example", "/export", func(n *NFSSpec) { n.Version = "4" })},
		{"nas:/export,v4.2,sec=krb5p", nfs("nas", "/export", func(n *NFSSpec) { n.Version, n.Options = "4.2", []string{"sec=krb5p"} })},
		{"[fe80::1%eth0]:/export", nfs("fe80::1%eth0", "/export", nil)},
		{"nas:/", nfs("nas", "/", nil)},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if d := cmp.Diff(tt.want, got, urlCmp); d != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, d)
			}
			// String round-trips.
			again, err := Parse(got.String())
			if err != nil {
				t.Fatalf("Parse(String()=%q): %v", got.String(), err)
			}
			if d := cmp.Diff(got, again, urlCmp); d != "" {
				t.Errorf("round trip via %q (-first +second):\n%s", got.String(), d)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"garbage", "unrecognised"},
		{"ftp://host/file", `unsupported URL scheme "ftp"`},
		{"http:///path", "missing host"},
		{"http:foo", "unrecognised"},
		{"tftp://10.0.0.1", "tftp URL needs a file path"},
		{"tftp://10.0.0.1/", "tftp URL needs a file path"},
		{"http://bad_host-.x/", "bad host name"},
		{"http://256.1.1.1/", "not a valid IPv4"},
		{"http://host:99999/", "bad port"},
		{"nfs://nas/srv/my%20root", "bad NFS export"},
		{"nfs:///export", "no host"},
		{"nfs://nas", "bad NFS export"},
		{"nfs://nas/export?vers=5", "bad NFS version"},
		{"nfs://nas/export?overlay=1", "overlay takes no value"},
		{"nfs://nas/export?init=sbin/init", "bad init path"},
		{"nfs://nas/export?context=%22x%22", "bad NFS option"},
		{"nfs://nas/export#frag", "fragment"},
		{"nas:export", "unrecognised"},
		{"fe80::1:/export", "must be in brackets"},
		{"[10.0.0.1]:/export", "not an IPv6"},
		{"[fd00::1]/export", "unrecognised"},
		{"[fd00::1]x:/export", "want [ipv6]:/export"},
		{":/export", "missing host"},
		{"http://host/a b", "whitespace"},
		{"shell now", "whitespace"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.in, got)
			}
			msg := err.Error()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(msg, tt.want) ||
				!strings.Contains(msg, `"`+tt.in+`"`) || !strings.Contains(msg, "accepted forms") {
				t.Errorf("Parse(%q) error = %q; want it to contain %q, the quoted value and the accepted forms", tt.in, msg, tt.want)
			}
		})
	}
}

func TestNFSHelpers(t *testing.T) {
	s, err := Parse("[fd00::1]:/srv/root,vers=4.2,ro,nolock")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.NFS.Source(), "[fd00::1]:/srv/root"; got != want {
		t.Errorf("Source() = %q, want %q", got, want)
	}
	if got, want := s.NFS.MountData(), "vers=4.2,ro,nolock"; got != want {
		t.Errorf("MountData() = %q, want %q", got, want)
	}
	if got, want := s.String(), "nfs://[fd00::1]/srv/root?vers=4.2&init=/sbin/init&ro&nolock"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for k, want := range map[Kind]string{Shell: "shell", Chain: "chain", NFS: "nfs", 9: "Kind(9)"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), k.String(), want)
		}
	}
}

func TestCmdlineValue(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		want    string
		ok      bool
	}{
		{"", "", false},
		{"console=ttyS0,115200 root=/dev/ram0", "", false},
		{"console=ttyS0 ramboot.224=http://10.0.0.1/boot.ipxe quiet", "http://10.0.0.1/boot.ipxe", true},
		{"ramboot.224=nfs://nas/srv?vers=4.2&overlay\n", "nfs://nas/srv?vers=4.2&overlay", true},
		{`quiet ramboot.224="  shell " x=y`, "  shell ", true},
		{`quiet "ramboot.224=a b c" x=y`, "a b c", true},
		{`ramboot.224= quiet`, "", true},
		{`ramboot.224`, "", true},
		{`ramboot.2244=x`, "", false},
		{`xramboot.224=x`, "", false},
		{`ramboot.224=a ramboot.224=b`, "b", true},
		{`ramboot.224=a -- ramboot.224=b`, "a", true},
		{`foo="x ramboot.224=y" bar`, "", false},
		{`ramboot.224="unterminated value`, "unterminated value", true},
		{"\tramboot.224=tabbed\t", "tabbed", true},
	} {
		got, ok := CmdlineValue(tt.cmdline)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CmdlineValue(%q) = %q, %v; want %q, %v", tt.cmdline, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "shell", "http://10.0.0.1/boot.ipxe", "tftp://h/f", "https://[::1]:443/x?y#z",
		"nfs://nas/srv/root?vers=4.2&overlay&init=/sbin/init&ro", "nfs://nas:2049/e?vers=3,overlay",
		"10.0.0.1:/srv/root,vers=4.1,overlay,init=/bin/sh,ro", "[fe80::1%eth0]:/export", "garbage",
		"nfs://nas/%2Fa%3Fb", "http://a%20b/", "nfs://[::ffff:1.2.3.4]/x",
		"local", "local:/dev/vda2", "local:PARTUUID=1234-02",
		"install:http://h/i.img.gz#sha256=none&disk=/dev/vda&hostname=n1&keys=http://h/k&seed=http://h/s/&grow=0&then=local",
		"install:http://h/i#sha256=none&keys=http://h/k#sha256=" + strings.Repeat("ab", 32) + "&seed=http://h/s#sha256=" + strings.Repeat("0", 64) + "," + strings.Repeat("F", 64) + "&then=local",
		"install:http://h/i#sha256=none,seed=tftp://h/s/#sha256=" + strings.Repeat("1", 64) + "," + strings.Repeat("2", 64) + ",keys=http://h/k#sha256=" + strings.Repeat("3", 64),
		"install:http://h/i#sha256=none&keys=http://h/k#sha256=ab,cd&seed=http://h/s#sha256=&x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			if !strings.Contains(err.Error(), "accepted forms") {
				t.Fatalf("error without accepted forms: %v", err)
			}
			return
		}
		str := s.String()
		again, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but Parse(String()=%q): %v", in, str, err)
		}
		if d := cmp.Diff(s, again, urlCmp); d != "" {
			t.Fatalf("Parse(%q) round trip via %q differs (-first +second):\n%s", in, str, d)
		}
		CmdlineValue(in)
		CmdlineValue("ramboot.224=" + in)
	})
}
