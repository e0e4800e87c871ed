package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/internal/testenv"
	"github.com/ramboot/ramboot/server/status"
	"github.com/ramboot/ramboot/site/inventory"
)

const (
	piMAC    = "dc:a6:32:01:36:c2"
	piSerial = "9ffefdef"
	// piAgent is what a Pi 4's bootloader sends (rpi-eeprom#433's log).
	piAgent = "rpiboot/1.0 (c03115; version:507b2360)"
)

// bootTree writes a tree with a Pi's boot.img (64 KiB of random bytes)
// and boot.sig: a one-board rpi4 tree with them at the root, or a mixed
// tree (rpi4 with both, rpi5 with boot.sig only, pc with neither) with
// them in the board's directory. It returns the root and the two files.
func bootTree(t *testing.T, mixed bool) (string, []byte, []byte) {
	t.Helper()
	root := t.TempDir()
	img := make([]byte, 64<<10)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	// A PNG's magic: a server that let ServeContent sniff would say image/png.
	copy(img, "\x89PNG\r\n\x1a\n")
	sig := []byte(strings.Repeat("ab", 32) + "\nts: 0\nrsa2048: " + strings.Repeat("cd", 256) + "\n")
	write := func(name string, data []byte) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func(board, arch, kernel string) []byte {
		return fmt.Appendf(nil, `{"board":%q,"arch":%q,"kernel_file":%q}`, board, arch, kernel)
	}
	if !mixed {
		write("manifest.json", manifest("rpi4", "arm64", "Image"))
		write("boot.img", img)
		write("boot.sig", sig)
		return root, img, sig
	}
	write("manifest.json", []byte(`{"boards":["rpi4","rpi5","pc"]}`))
	write("rpi4/manifest.json", manifest("rpi4", "arm64", "Image"))
	write("rpi4/boot.img", img)
	write("rpi4/boot.sig", sig)
	write("rpi5/manifest.json", manifest("rpi5", "arm64", "Image"))
	write("rpi5/boot.sig", sig)
	write("pc/manifest.json", manifest("pc", "amd64", "vmlinuz"))
	return root, img, sig
}

// bootServer serves the tree at root with httptest on 127.0.0.1 and
// returns the server's address and its log. The neighbour table is
// empty unless the test sets s.neighborMAC.
func bootServer(t *testing.T, s *Server, root string) (string, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	s.Root = root
	s.Log = slog.New(slog.NewTextHandler(logs, nil))
	if s.neighborMAC == nil {
		s.neighborMAC = func(string) string { return "" }
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs.Listener.Addr().String(), logs
}

// rawDo sends one request with exactly this request target (a client
// library would clean it) and the Pi's User-Agent unless agent says
// otherwise, and returns the response with its body read.
func rawDo(t *testing.T, addr, method, target, agent string, header ...string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := method + " " + target + " HTTP/1.1\r\nHost: boot.lan\r\nUser-Agent: " + agent + "\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"Connection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, target, err)
	}
	return resp, body
}

// TestServeBootPaths: /<board>/boot.img and boot.sig, in a one-board and
// a mixed tree, answered 200 with an exact Content-Length (never
// chunked) and the set types to GET and HEAD, 206 to a range; 404 for a
// board the tree lacks, a file the board lacks and any unclean path,
// never a redirect (the bootloader follows none).
func TestServeBootPaths(t *testing.T) {
	// Debian's /etc/mime.types, which ServeContent would go by.
	if err := mime.AddExtensionType(".sig", "application/pgp-signature"); err != nil {
		t.Fatal(err)
	}
	for _, mixed := range []bool{false, true} {
		t.Run(map[bool]string{false: "one-board", true: "mixed"}[mixed], func(t *testing.T) {
			root, img, sig := bootTree(t, mixed)
			addr, _ := bootServer(t, &Server{}, root)

			for _, tc := range []struct {
				method, target, typ string
				want                []byte
			}{
				{"GET", "/rpi4/boot.img", "application/octet-stream", img},
				{"HEAD", "/rpi4/boot.img", "application/octet-stream", img},
				{"GET", "/rpi4/boot.sig", "text/plain; charset=utf-8", sig},
				{"HEAD", "/rpi4/boot.sig", "text/plain; charset=utf-8", sig},
			} {
				resp, body := rawDo(t, addr, tc.method, tc.target, piAgent)
				what := tc.method + " " + tc.target
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s: %s, want 200", what, resp.Status)
					continue
				}
				if len(resp.TransferEncoding) > 0 {
					t.Errorf("%s: Transfer-Encoding %q, want none (an exact Content-Length)", what, resp.TransferEncoding)
				}
				if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(tc.want)) {
					t.Errorf("%s: Content-Length %q, want %d", what, got, len(tc.want))
				}
				if got := resp.Header.Get("Content-Type"); got != tc.typ {
					t.Errorf("%s: Content-Type %q, want %q", what, got, tc.typ)
				}
				wantBody := tc.want
				if tc.method == "HEAD" {
					wantBody = nil
				}
				if !bytes.Equal(body, wantBody) {
					t.Errorf("%s: %d body bytes, want the file's %d", what, len(body), len(wantBody))
				}
			}

			resp, body := rawDo(t, addr, "GET", "/rpi4/boot.img", piAgent, "Range: bytes=100-199")
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, img[100:200]) ||
				resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", len(img)) ||
				resp.Header.Get("Content-Length") != "100" || resp.Header.Get("Content-Type") != "application/octet-stream" {
				t.Errorf("GET /rpi4/boot.img, range 100-199: %s, Content-Range %q, Content-Length %q, type %q, %d bytes",
					resp.Status, resp.Header.Get("Content-Range"), resp.Header.Get("Content-Length"), resp.Header.Get("Content-Type"), len(body))
			}

			notFound := []string{
				"/rpi3/boot.img", // no such board
				"/Rpi4/boot.img", // HTTP_PATH is case-sensitive
				"/boot.img",      // no board
				"/net_install/boot.sig",
				"/rpi4/x/boot.img",
				// Unclean paths: the ServeMux would answer 301.
				"//rpi4/boot.img",
				"/rpi4//boot.img",
				"/rpi4/./boot.img",
				"/./rpi4/boot.sig",
				"/rpi4/../rpi4/boot.img",
				"/x/../rpi4/boot.sig",
				"/rpi4/boot.img/.",
				"/rpi4/boot.img/x/..",
			}
			if mixed {
				notFound = append(notFound, "/rpi5/boot.img", "/pc/boot.img", "/pc/boot.sig")
			} else {
				notFound = append(notFound, "/pc/boot.img", "/rpi5/boot.sig")
			}
			for _, target := range notFound {
				for _, method := range []string{"GET", "HEAD"} {
					resp, _ := rawDo(t, addr, method, target, piAgent)
					if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" {
						t.Errorf("%s %s: %s (Location %q), want 404 and no redirect", method, target, resp.Status, resp.Header.Get("Location"))
					}
				}
			}
			if mixed {
				if resp, body := rawDo(t, addr, "GET", "/rpi5/boot.sig", piAgent); resp.StatusCode != http.StatusOK || !bytes.Equal(body, sig) {
					t.Errorf("GET /rpi5/boot.sig (the board has it, not its boot.img): %s, %d bytes", resp.Status, len(body))
				}
			}
		})
	}
}

// Every fetch is logged once with the MAC of the node at the client's
// address by the server's own evidence (here proxy DHCP saw the Pi and
// the neighbour table has its MAC at the address) and the User-Agent as
// a claim, and shows on the node's status record and /status.json. With
// no evidence the MAC is "unknown" and the fetch goes on the address's
// record, whatever MAC the User-Agent names.
func TestServeBootLogAndBoard(t *testing.T) {
	root, img, sig := bootTree(t, true)
	s := &Server{}
	s.neighborMAC = func(ip string) string {
		if ip == "127.0.0.1" {
			return piMAC
		}
		return ""
	}
	addr, logs := bootServer(t, s, root)
	dhcpSeen(s, piMAC, piSerial)

	bootLines := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "msg=http-boot") {
				out = append(out, l)
			}
		}
		return out
	}
	// fetch GETs target and waits for its log line: the client has the
	// whole response before the handler logs.
	fetch := func(target, agent string) {
		t.Helper()
		n := len(bootLines())
		rawDo(t, addr, "GET", target, agent)
		waitFor(t, "the log line of "+target, func() bool { return len(bootLines()) > n })
	}
	fetch("/rpi4/boot.sig", piAgent)
	fetch("/rpi4/boot.img", piAgent)
	fetch("/rpi5/boot.img", piAgent)
	lines := bootLines()
	if len(lines) != 3 {
		t.Fatalf("%d http-boot log lines for 3 fetches, want one each:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	quotedAgent := strconv.Quote(piAgent)
	for i, want := range [][]string{
		{"mac=" + piMAC, "serial=" + piSerial, "board=rpi4", "file=boot.sig", "status=200", fmt.Sprintf("bytes=%d ", len(sig)), "agent=" + quotedAgent},
		{"mac=" + piMAC, "serial=" + piSerial, "board=rpi4", "file=boot.img", "served=rpi4/boot.img", "status=200", fmt.Sprintf("bytes=%d ", len(img)), fmt.Sprintf("size=%d ", len(img)), "agent=" + quotedAgent},
		{"mac=" + piMAC, "board=rpi5", "file=boot.img", "status=404", "agent=" + quotedAgent},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i]+" ", w) {
				t.Errorf("log line %d has no %q:\n%s", i+1, w, lines[i])
			}
		}
	}

	n, ok := s.Board.Node(piMAC)
	if !ok {
		t.Fatalf("no record for %s; board: %+v", piMAC, s.Board.Nodes())
	}
	claim := "; User-Agent (claimed) " + quotedAgent
	for stage, prefix := range map[string]string{
		"boot.sig fetched":       fmt.Sprintf("/rpi4/boot.sig: %d bytes in ", len(sig)),
		"boot.img fetch started": fmt.Sprintf("/rpi4/boot.img: started (%d bytes)", len(img)),
		"boot.img fetched":       fmt.Sprintf("/rpi4/boot.img: %d bytes in ", len(img)),
		"boot.img not found":     "/rpi5/boot.img: the tree has no rpi5/boot.img",
	} {
		d := stepDetail(n, stage)
		if !strings.HasPrefix(d, prefix) || !strings.HasSuffix(d, claim) {
			t.Errorf("step %q: detail %q, want %q...%q; steps: %+v", stage, d, prefix, claim, n.Steps)
		}
	}
	if n.Stage != "boot.img not found" {
		t.Errorf("the node's stage is %q, want the last fetch's, boot.img not found", n.Stage)
	}
	resp, err := http.Get("http://" + addr + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(js), `"stage":"boot.img fetched","detail":"/rpi4/boot.img: `+strconv.Itoa(len(img))+` bytes in `) {
		t.Errorf("status.json shows no boot.img fetch:\n%s", js)
	}
	text := scrape(t, "http://"+addr)
	if got := metric(text, `ramboot_http_transfers_total{result="completed"}`); got != 2 {
		t.Errorf("completed HTTP transfers %v, want 2 (boot.sig and boot.img)", got)
	}
	if got := metric(text, `ramboot_errors_total{kind="http_not_found"}`); got != 1 {
		t.Errorf("http_not_found %v, want 1 (rpi5's boot.img)", got)
	}

	// No evidence: the neighbour table has nothing at the address. A
	// User-Agent naming the Pi's MAC changes nothing but the record's text.
	s.neighborMAC = func(string) string { return "" }
	agent := "ramboot-init (mac=" + piMAC + ")"
	fetch("/rpi4/boot.sig", agent)
	if l := bootLines()[3]; !strings.Contains(l, " mac=unknown ") || strings.Contains(l, " mac="+piMAC) {
		t.Errorf("fetch without evidence logged as:\n%s\nwant mac=unknown", l)
	}
	var byIP status.Node
	for _, m := range s.Board.Nodes() {
		if m.IP == "127.0.0.1" && m.MAC == "" {
			byIP = m
		}
	}
	d := stepDetail(byIP, "boot.sig fetched")
	if !strings.Contains(d, "the User-Agent names "+piMAC+", not this address's node") {
		t.Errorf("fetch without evidence: record %+v, want the boot.sig fetch on the address's record with the User-Agent's claim", byIP)
	}
	if n2, _ := s.Board.Node(piMAC); len(n2.Steps) != len(n.Steps) {
		t.Errorf("a fetch from an address that is not the Pi's went on its record: %+v", n2.Steps)
	}
}

// serve's own listener (the per-client cap and stall timeout wrap it)
// answers the boot paths as the handler does.
func TestServeBootLoopback(t *testing.T) {
	root, img, _ := bootTree(t, false)
	s := &Server{Root: root, neighborMAC: func(string) string { return "" }}
	base, _ := runLoopback(t, s)
	resp, body := rawDo(t, strings.TrimPrefix(base, "http://"), "GET", "/rpi4/boot.img", piAgent)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img) || resp.ContentLength != int64(len(img)) {
		t.Errorf("GET /rpi4/boot.img from serve: %s, Content-Length %d, %d bytes, want 200 and %d", resp.Status, resp.ContentLength, len(body), len(img))
	}
	if resp, _ := rawDo(t, strings.TrimPrefix(base, "http://"), "GET", "//rpi4/boot.img", piAgent); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET //rpi4/boot.img from serve: %s, want 404", resp.Status)
	}
}

func TestIsBootPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/rpi4/boot.img": true, "/rpi4/boot.sig": true, "//rpi4/boot.img": true, "/rpi4/boot.img/.": true,
		"/boot.img": true, "/a/b/boot.sig": true,
		"/rpi4/boot.img.sha256": false, "/rpi4/Image": false, "/rpi4/boot.img/x": false, "/": false, "/status": false,
	} {
		if got := isBootPath(p); got != want {
			t.Errorf("isBootPath(%q) = %v, want %v", p, got, want)
		}
	}
	for p, want := range map[string]string{
		"/rpi4/boot.img": "rpi4 boot.img", "/cm4/boot.sig": "cm4 boot.sig",
		"//rpi4/boot.img": "", "/rpi4/./boot.img": "", "/boot.img": "", "/a/b/boot.img": "", "rpi4/boot.img": "",
	} {
		b, f, ok := splitBootPath(p)
		got := ""
		if ok {
			got = b + " " + f
		}
		if got != want {
			t.Errorf("splitBootPath(%q) = %q, want %q", p, got, want)
		}
	}
}

// A node with http_boot: DIR in the inventory gets DIR's boot.img and
// boot.sig, whatever board its path names, when it is that node by the
// server's evidence; DIR without boot.sig is a 404, never the board's
// boot.sig beside DIR's boot.img. Any other address gets the board's,
// whatever MAC its User-Agent names.
func TestServeBootPerNode(t *testing.T) {
	root, img, sig := bootTree(t, false)
	canary := []byte("canary boot.img")
	if err := os.MkdirAll(filepath.Join(root, "canary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "canary", "boot.img"), canary, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Booter: BooterFunc(func(mac net.HardwareAddr, serial string, _ net.IP) (inventory.Match, bool, error) {
		if mac.String() == piMAC {
			return inventory.Match{HTTPBoot: "canary"}, true, nil
		}
		return inventory.Match{}, false, nil
	})}
	neigh := piMAC
	s.neighborMAC = func(string) string { return neigh }
	addr, logs := bootServer(t, s, root)
	dhcpSeen(s, piMAC, piSerial)

	for _, target := range []string{"/rpi4/boot.img", "/net_install/boot.img"} {
		if resp, body := rawDo(t, addr, "GET", target, piAgent); resp.StatusCode != http.StatusOK || !bytes.Equal(body, canary) {
			t.Errorf("GET %s by the http_boot node: %s, %d bytes, want canary/boot.img's %d", target, resp.Status, len(body), len(canary))
		}
	}
	if resp, _ := rawDo(t, addr, "GET", "/rpi4/boot.sig", piAgent); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /rpi4/boot.sig by the http_boot node, canary has none: %s, want 404", resp.Status)
	}
	waitFor(t, "the per-node fetch logged", func() bool {
		return strings.Contains(logs.String(), "http_boot=canary board=rpi4 file=boot.img served=canary/boot.img status=200")
	})
	waitFor(t, "the fetch on the node's record", func() bool {
		n, _ := s.Board.Node(piMAC)
		return strings.Contains(stepDetail(n, "boot.img fetched"), " (nodes.yaml http_boot canary)")
	})

	neigh = ""
	for target, want := range map[string][]byte{"/rpi4/boot.img": img, "/rpi4/boot.sig": sig} {
		if resp, body := rawDo(t, addr, "GET", target, "ramboot-init (mac="+piMAC+")"); resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Errorf("GET %s from an address that is no node's: %s, %d bytes, want the board's %d", target, resp.Status, len(body), len(want))
		}
	}
	if resp, _ := rawDo(t, addr, "GET", "/net_install/boot.img", piAgent); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /net_install/boot.img from an address that is no node's: %s, want 404", resp.Status)
	}
}

// TestReportBootImg: a node's network-up report carries the digest of the
// boot.img its bootloader verified; the node's record says whether it is
// the boot.img this server serves (by its boot.sig), and a stranger's
// digest is logged as a warning.
func TestReportBootImg(t *testing.T) {
	root, _, _ := bootTree(t, true)
	s := &Server{}
	s.neighborMAC = func(string) string { return piMAC }
	addr, logs := bootServer(t, s, root)
	dhcpSeen(s, piMAC, piSerial)
	post := func(digest string) *http.Response {
		t.Helper()
		body := fmt.Sprintf(`{"mac":%q,"stage":"network-up","detail":"eth0","boot_img":%q}`, piMAC, digest)
		resp, err := http.Post("http://"+addr+"/report", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(strings.Repeat("ab", 32)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the report: %s, want 204", resp.Status)
	}
	n, _ := s.Board.Node(piMAC)
	if d := stepDetail(n, "network-up"); !strings.Contains(d, "boot.img sha256 abababababababab... verified by the bootloader: the served rpi4/boot.img") {
		t.Errorf("network-up on the record: %q; want it to name the served rpi4/boot.img", d)
	}
	if strings.Contains(logs.String(), "level=WARN msg=boot.img") {
		t.Errorf("a served boot.img warned:\n%s", logs)
	}

	if resp := post(strings.Repeat("cd", 32)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the second report: %s, want 204", resp.Status)
	}
	n, _ = s.Board.Node(piMAC)
	var last string
	for _, st := range n.Steps {
		if st.Stage == "network-up" {
			last = st.Detail
		}
	}
	if !strings.Contains(last, "verified by the bootloader is NOT one this server serves (rpi4/boot.img is abababababababab...") {
		t.Errorf("network-up with another digest: %q; want NOT one this server serves, naming rpi4/boot.img's", last)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=boot.img mac="+piMAC) {
		t.Errorf("a stranger boot.img was not logged as a warning:\n%s", logs)
	}

	// A digest that is not one is refused as the report it is in.
	if resp := post("not-a-digest"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a report with boot_img not-a-digest: %s, want 400", resp.Status)
	}
}
