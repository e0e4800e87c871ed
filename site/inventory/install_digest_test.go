package inventory

import (
	"net"
	"strings"
	"testing"
)

// keys: and seed: may end in #sha256=: the digests pass through to the
// install form (lower case), a node's own keys: replaces the defaults'
// digest with it, and a bad one is refused at load naming the line.
func TestInstallFileDigests(t *testing.T) {
	const (
		k = "1111111111111111111111111111111111111111111111111111111111111111"
		u = "2222222222222222222222222222222222222222222222222222222222222222"
		m = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	)
	inv, err := Parse([]byte(`defaults:
  install:
    image: "http://{{.Server}}/i.img"
    sha256: none
    keys: "http://{{.Server}}:8080/keys#sha256=` + strings.ToUpper(k) + `"
nodes:
  - mac: 02:00:00:00:00:01
    hostname: n1
    install:
      seed: http://{{.Server}}:8080/seed/{{.Hostname}}#sha256=` + u + `,` + strings.ToUpper(m) + `
  - mac: 02:00:00:00:00:02
    hostname: n2
    install:
      keys: "http://{{.Server}}:8080/keys-{{.Hostname}}"
`))
	if err != nil {
		t.Fatal(err)
	}
	srv := net.IPv4(192, 0, 2, 1)
	for _, tc := range []struct{ mac, install string }{
		{"02:00:00:00:00:01", "install:http://192.0.2.1/i.img#sha256=none&hostname=n1&keys=http://192.0.2.1:8080/keys#sha256=" + k +
			"&seed=http://192.0.2.1:8080/seed/n1#sha256=" + u + "," + m},
		// Its own keys:, with no digest: the defaults' digest does not follow.
		{"02:00:00:00:00:02", "install:http://192.0.2.1/i.img#sha256=none&hostname=n2&keys=http://192.0.2.1:8080/keys-n2"},
		// Unlisted: the defaults' install, digest and all.
		{"02:00:00:00:00:77", "install:http://192.0.2.1/i.img#sha256=none&keys=http://192.0.2.1:8080/keys#sha256=" + k},
	} {
		mac, _ := net.ParseMAC(tc.mac)
		got, ok, err := inv.Lookup(mac, "", srv)
		if err != nil || !ok || got.Install != tc.install {
			t.Errorf("%s: %q %v %v\nwant %q", tc.mac, got.Install, ok, err, tc.install)
		}
	}

	node := "nodes:\n  - mac: 02:00:00:00:00:01\n    install:\n      image: http://192.0.2.1/i.img\n      sha256: none\n      "
	for _, tc := range []struct{ yaml, want string }{
		{node + "keys: http://192.0.2.1/k#sha256=abc\n", `line 2: install.keys "http://192.0.2.1/k#sha256=abc": after # want sha256=HEX: the 64 hex digits of the authorized_keys file`},
		{node + "keys: http://192.0.2.1/k#md5=" + k[:32] + "\n", "install.keys"},
		{node + "keys: http://192.0.2.1/k#sha256=" + k + "," + k + "\n", "after # want sha256=HEX"},
		{node + "keys: \"http://192.0.2.1/k#\"\n", "after # want sha256=HEX"},
		{node + "seed: http://192.0.2.1/s#sha256=" + u + "\n", "line 2: install.seed \"http://192.0.2.1/s#sha256=" + u + "\": after # want sha256=UHEX,MHEX: the digests of user-data then meta-data"},
		{node + "seed: http://192.0.2.1/s#sha256=" + u + "," + m + "," + m + "\n", "install.seed"},
		{node + "seed: http://192.0.2.1/s#sha256=" + u + ",zz\n", "install.seed"},
		{"defaults:\n  install:\n    keys: http://h/k#sha256=1\n", "defaults: install.keys"},
		{node + "keys: \"#sha256=" + k + "\"\n", "line 2: install.keys \"#sha256=" + k + "\": the URL before # is missing"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n err = %v\nwant %q", tc.yaml, err, tc.want)
		}
	}
}
