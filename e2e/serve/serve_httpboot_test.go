package serve

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
)

// TestServePiHTTPBoot replays a Pi 4 whose EEPROM `ramboot eeprom
// --http-host 192.0.2.1` set up (BOOT_ORDER 0xf27, HTTP_PORT 8080,
// HTTP_PATH rpi4) against `ramboot serve` in proxy mode: its DHCP, then
// boot.sig and boot.img over plain HTTP, byte-exact, boot.img's SHA-256
// boot.sig's and the signature verifying with the key's public half, as
// the bootloader checks before it boots. serve logs the fetch with the
// Pi's MAC (by the server's own evidence) and shows it on the status
// board; a path the tree has no board for is a 404, never a redirect.
func TestServePiHTTPBoot(t *testing.T) {
	l := lab.New(t)
	dir, key, bi := lab.HTTPBootTree(t, "rpi4")
	srv := l.Serve(t, dir)
	pi := client.NewPi(t, l, dir, "192.0.2.60", false)

	r := pi.BootHTTP(8080, "rpi4", "", &key.PublicKey, 60*time.Second)
	t.Logf("HTTP boot: %s", r)
	if r.Err != nil {
		t.Fatalf("the Pi's HTTP boot: %v", r.Err)
	}
	if r.Files != 2 || r.Bytes != int64(len(bi.Img)+len(bi.Sig)) {
		t.Errorf("the Pi fetched %d files, %d bytes; want boot.sig and boot.img, %d bytes", r.Files, r.Bytes, len(bi.Img)+len(bi.Sig))
	}
	e, _ := lab.WaitLog(t, srv, 0, 5*time.Second, "the boot.img fetch", func(e lab.LogLine) bool {
		return e.Msg() == "http-boot" && e.Str("file") == "boot.img"
	})
	if e.Str("mac") != client.PiMAC || e.Str("board") != "rpi4" || e.Str("agent") != client.PiHTTPAgent || e.Str("status") != "200" || e["bytes"] != float64(len(bi.Img)) {
		t.Errorf("serve logged the fetch as %v; want the Pi's MAC %s, board rpi4, its User-Agent, 200, %d bytes", e, client.PiMAC, len(bi.Img))
	}
	var steps []string
	for _, n := range lab.Status(t, pi.Peer) {
		if n.MAC == client.PiMAC {
			for _, st := range n.Steps {
				steps = append(steps, st.Stage+": "+st.Detail)
			}
		}
	}
	if all := strings.Join(steps, "\n"); !strings.Contains(all, "boot.img fetched: /rpi4/boot.img: "+strconv.Itoa(len(bi.Img))+" bytes") {
		t.Errorf("the Pi's steps on the status board:\n%s\nwant boot.img fetched, %d bytes", all, len(bi.Img))
	}

	// A board the tree lacks: 404 (the bootloader goes on to TFTP), not 3xx.
	if r := pi.BootHTTP(8080, "rpi5", "", &key.PublicKey, 20*time.Second); r.Err == nil || !strings.Contains(r.Err.Error(), "404") {
		t.Errorf("an HTTP boot from /rpi5/ of an rpi4 tree: %v; want a 404", r.Err)
	}
}
