package dhcpconf

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/site/inventory"
)

// keys: and seed: digests pass through to the install form the config's
// note prints; a form they make too long for one option says so.
func TestInstallNodesFileDigests(t *testing.T) {
	k := strings.Repeat("b", 64)
	u, m := strings.Repeat("c", 64), strings.Repeat("d", 64)
	inv, err := inventory.Parse([]byte(`nodes:
  - mac: 02:00:00:00:00:01
    install:
      image: "http://{{.Server}}/i.img"
      sha256: none
      keys: "http://{{.Server}}/k#sha256=` + k + `"
  - mac: 02:00:00:00:00:02
    install:
      image: "http://{{.Server}}:8080/img/debian.raw.xz"
      sha256: ` + k + `
      keys: "http://{{.Server}}:8080/keys/n2#sha256=` + k + `"
      seed: "http://{{.Server}}:8080/seed/n2#sha256=` + u + `,` + m + `"
`))
	if err != nil {
		t.Fatal(err)
	}
	ip, n, err := ParseServer("192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range Formats {
		var b bytes.Buffer
		if err := Generate(&b, Options{Format: format, Inventory: inv, Server: ip, Net: n, Interface: "eth1"}); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		wantAll(t, b.String(),
			"install:http://192.0.2.10/i.img#sha256=none&keys=http://192.0.2.10/k#sha256="+k,
			"more than a DHCP option holds: serve the image, keys and seed at shorter URLs, or give keys: and seed: without their #sha256= digests")
	}
}
