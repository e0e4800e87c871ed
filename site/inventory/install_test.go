package inventory

import (
	"net"
	"strings"
	"testing"
)

const sha = "3f0c8a2b6f3c5d1e9a7b4c2d0e8f6a4b2c0d9e7f5a3b1c8d6e4f2a0b9c7d5e3f"

const lifecycleYAML = `defaults:
  option224: "nfs://{{.Server}}/srv/rack?vers=3"
  boot: "local:LABEL=root"
  install:
    disk: /dev/nvme0n1
    grow: false
nodes:
  - mac: 02:00:00:00:00:01
    hostname: pi-r1-01
    install:
      image: "http://{{.Server}}:8080/img/debian.raw.xz"
      sha256: ` + sha + `
  - mac: 02:00:00:00:00:02
    hostname: pi-r1-02
    install:
      image: "https://img.example.net/{{.MACHyphen}}.img.zst"
      sha256: NONE
      disk: /dev/disk/by-id/nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456
      hostname: "cust-{{.MACHyphen}}"
      keys: "http://{{.Server}}:8080/keys/{{.Hostname}}"
      seed: "tftp://{{.Server}}/seed/{{.Hostname}}"
      grow: true
      then: local
    boot: "nfs://{{.Server}}/srv/{{.Hostname}}"
  - mac: 02:00:00:00:00:03
    hostname: plain
  - serial: 9ffefdef
    option224: shell
`

func TestInstallLookup(t *testing.T) {
	inv, err := Parse([]byte(lifecycleYAML))
	if err != nil {
		t.Fatal(err)
	}
	srv := net.IPv4(192, 0, 2, 1)
	for _, tc := range []struct {
		mac, serial   string
		install, o224 string
		image, sha256 string
	}{
		// Own image and digest over the defaults' disk and grow; boot from
		// the defaults.
		{"02:00:00:00:00:01", "",
			"install:http://192.0.2.1:8080/img/debian.raw.xz#sha256=" + sha + "&disk=/dev/nvme0n1&hostname=pi-r1-01&grow=0",
			"local:LABEL=root", "http://192.0.2.1:8080/img/debian.raw.xz", sha},
		// Every field, templates filled in, defaults (grow) left out.
		{"02:00:00:00:00:02", "",
			"install:https://img.example.net/02-00-00-00-00-02.img.zst#sha256=none&disk=/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456" +
				"&hostname=cust-02-00-00-00-00-02&keys=http://192.0.2.1:8080/keys/pi-r1-02&seed=tftp://192.0.2.1/seed/pi-r1-02&then=local",
			"nfs://192.0.2.1/srv/pi-r1-02", "https://img.example.net/02-00-00-00-00-02.img.zst", "none"},
		// No install of its own, and the defaults' has no image: option224.
		{"02:00:00:00:00:03", "", "", "nfs://192.0.2.1/srv/rack?vers=3", "", ""},
		{"02:00:00:00:00:09", "9ffefdef", "", "shell", "", ""},
	} {
		mac, _ := net.ParseMAC(tc.mac)
		m, ok, err := inv.Lookup(mac, tc.serial, srv)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", tc.mac, ok, err)
		}
		if m.Install != tc.install || m.Option224 != tc.o224 || m.InstallImage != tc.image || m.InstallSHA256 != tc.sha256 {
			t.Errorf("%s:\n got install %q\n    224     %q image %q sha %q\nwant install %q\n    224     %q image %q sha %q",
				tc.mac, m.Install, m.Option224, m.InstallImage, m.InstallSHA256, tc.install, tc.o224, tc.image, tc.sha256)
		}
		if len(m.Install) > 255 {
			t.Errorf("%s: install form %d bytes: more than one DHCP option", tc.mac, len(m.Install))
		}
	}
}

func TestInstallDefaults(t *testing.T) {
	// The defaults' install applies to nodes without an entry (by MAC),
	// and boot defaults to local; a node's own option224 opts out.
	inv, err := Parse([]byte(`defaults:
  install: {image: "http://{{.Server}}/i.img", sha256: "` + strings.ToUpper(sha) + `"}
nodes:
  - mac: 02:00:00:00:00:01
    hostname: web-1
  - mac: 02:00:00:00:00:02
    option224: shell
`))
	if err != nil {
		t.Fatal(err)
	}
	srv := net.IPv4(198, 51, 100, 1)
	for _, tc := range []struct{ mac, install, o224 string }{
		{"02:00:00:00:00:01", "install:http://198.51.100.1/i.img#sha256=" + sha + "&hostname=web-1", "local"},
		{"02:00:00:00:00:02", "", "shell"},
		{"02:00:00:00:00:77", "install:http://198.51.100.1/i.img#sha256=" + sha, "local"},
	} {
		mac, _ := net.ParseMAC(tc.mac)
		m, ok, err := inv.Lookup(mac, "", srv)
		if err != nil || !ok || m.Install != tc.install || m.Option224 != tc.o224 {
			t.Errorf("%s: %+v %v %v, want install %q 224 %q", tc.mac, m, ok, err, tc.install, tc.o224)
		}
	}
}

func TestInstallParseErrors(t *testing.T) {
	node := "nodes:\n  - mac: 02:00:00:00:00:01\n    "
	good := "image: http://192.0.2.1/i.img, sha256: " + sha
	for _, tc := range []struct{ yaml, want string }{
		{node + "option224: shell\n    install: {" + good + "}\n", "line 2: option224 and install: on one node"},
		{"defaults:\n  option224: shell\n  install: {" + good + "}\n", "defaults: option224 and install: on one node"},
		{node + "install: {image: http://192.0.2.1/i.img}\n", "line 2: install: needs sha256"},
		{node + "install: {sha256: none}\n", "install: needs image"},
		{node + "install: {image: http://192.0.2.1/i.img, sha256: abc}\n", "install.sha256 \"abc\": want the image's 64 hex digits"},
		{node + "install: {image: ftp://192.0.2.1/i.img, sha256: none}\n", "want an http, https or tftp URL"},
		{node + "install: {image: \"http://192.0.2.1/i.img?a=1&b=2\", sha256: none}\n", "holds \"&\""},
		{node + "install: {image: \"http:///i.img\", sha256: none}\n", "names no host"},
		{node + "install: {image: \"http://192.0.2.1/\", sha256: none}\n", "names no file"},
		{node + "install: {image: \"http://{{.Nope}}/i.img\", sha256: none}\n", "install.image"},
		{node + "install: {" + good + ", disk: sda}\n", "install.disk \"sda\": use auto"},
		{node + "install: {" + good + ", disk: /dev/../etc/passwd}\n", "install.disk"},
		{node + "install: {" + good + ", disk: \"/dev/sda,x\"}\n", "install.disk"},
		{node + "install: {" + good + ", then: poweroff}\n", "install.then \"poweroff\""},
		{node + "install: {" + good + ", grow: maybe}\n", "line 3: cannot unmarshal !!str `maybe` into bool"},
		{node + "install: {" + good + ", keys: /root/keys}\n", "install.keys"},
		{node + "install: {" + good + ", hostname: \"bad_name\"}\n", "install.hostname \"bad_name\""},
		{node + "install: {" + good + ", colour: red}\n", "colour"},
		{node + "install: {image: \"http://192.0.2.1/" + strings.Repeat("a", MaxInstallForm) + "\", sha256: none}\n", "more than 512"},
		{node + "boot: local\n", "line 2: boot: is what a node gets once installed, and this node has no install:"},
		{node + "option224: shell\n    boot: local\n", "this node has option224 and no install"},
		{node + "install: {" + good + "}\n    boot: \"install:http://x/y#sha256=none\"\n", "put the install in install:"},
		{"nodes:\n  - serial: 9ffefdef\n    install: {" + good + "}\n", "line 2: install: needs the node's mac"},
		{"defaults:\n  install: {" + good + "}\nnodes:\n  - serial: 9ffefdef\n", "line 4: install: needs the node's mac"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n err = %v\nwant %q", tc.yaml, err, tc.want)
		}
	}
	// Accepted forms.
	for _, y := range []string{
		node + "install: {" + good + ", disk: auto, then: reboot}\n",
		node + "install: {" + good + ", disk: /dev/mmcblk0}\n    boot: \"local:/dev/mmcblk0p2\"\n",
		"defaults:\n  boot: local\nnodes:\n  - mac: 02:00:00:00:00:01\n",         // boot in defaults, used by no one: fine
		"defaults:\n  install: {disk: /dev/sda}\nnodes:\n  - serial: 9ffefdef\n", // a base with no image installs nothing by itself
	} {
		if _, err := Parse([]byte(y)); err != nil {
			t.Errorf("%q: %v", y, err)
		}
	}
}

// The server adds the node's install generation to the rendered form; a
// form that passed the load checks has room for the largest one.
func TestInstallWithGeneration(t *testing.T) {
	form := "install:http://192.0.2.1/i.img#sha256=none"
	for _, tc := range []struct {
		gen  int
		want string
	}{
		{0, form},
		{1, form + "&gen=1"},
		{42, form + "&gen=42"},
	} {
		if got := WithGeneration(form, tc.gen); got != tc.want {
			t.Errorf("WithGeneration(%q, %d) = %q, want %q", form, tc.gen, got, tc.want)
		}
	}
	if got := WithGeneration("", 3); got != "" {
		t.Errorf("WithGeneration of no form = %q", got)
	}
	// The longest image URL the load accepts still fits with gen=999999999.
	node := "nodes:\n  - mac: 02:00:00:00:00:01\n    "
	long := ""
	for n := MaxInstallForm; n > 0; n-- {
		inv, err := Parse([]byte(node + "install: {image: \"http://192.0.2.1/" + strings.Repeat("a", n) + "\", sha256: none}\n"))
		if err != nil {
			continue
		}
		mac, _ := net.ParseMAC("02:00:00:00:00:01")
		m, _, err := inv.Lookup(mac, "", net.IPv4(192, 0, 2, 1))
		if err != nil {
			t.Fatal(err)
		}
		long = m.Install
		break
	}
	if long == "" {
		t.Fatal("no image URL length loads")
	}
	if got := WithGeneration(long, 999999999); len(got) > MaxInstallForm {
		t.Errorf("the longest form loaded, %d bytes, is %d with its generation: more than %d", len(long), len(got), MaxInstallForm)
	} else {
		t.Logf("longest form %d bytes, %d with gen=999999999", len(long), len(got))
	}
}
