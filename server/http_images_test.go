package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/server/status"
)

const imageSize = 3 << 20

// imageServer serves a tree with images/x.squashfs (3 MB of random
// bytes) and its .sha256 over HTTP on 127.0.0.1.
func imageServer(t *testing.T) (*Server, *httptest.Server, []byte) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, imageSize)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "images", "x.squashfs"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "images", "x.squashfs.sha256"), []byte("0123  x.squashfs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Root: root, Log: slog.New(slog.DiscardHandler)}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener = smallSendBuffer{hs.Listener}
	hs.Start()
	t.Cleanup(hs.Close)
	return s, hs, data
}

// smallSendBuffer gives each accepted connection a small send buffer,
// as a real network would: on loopback the kernel would otherwise take
// the whole 3 MB image at once, before a client could leave.
type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(128 << 10)
	}
	return c, err
}

// waitStage polls the board until the node with ip has stage among its
// steps, and returns that node and step.
func waitStage(t *testing.T, b *status.Board, ip, stage string) (status.Node, status.Step) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, n := range b.Nodes() {
			if n.IP != ip {
				continue
			}
			for _, st := range n.Steps {
				if st.Stage == stage {
					return n, st
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no step %q for %s on the board after 5s; board: %+v", stage, ip, b.Nodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stepDetail(n status.Node, stage string) string {
	for _, st := range n.Steps {
		if st.Stage == stage {
			return st.Detail
		}
	}
	return ""
}

func TestImageDownloadRecordedOnNode(t *testing.T) {
	s, hs, data := imageServer(t)
	const mac = "aa:bb:cc:dd:ee:ff"
	s.Board.DHCP(mac, status.Node{MAC: mac, IP: "127.0.0.1", Kind: "pc"}, "dhcp ack", "", status.Bound)

	resp, err := http.Get(hs.URL + "/images/x.squashfs")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET: status %d, %d bytes, want 200 and the %d bytes of the image", resp.StatusCode, len(body), len(data))
	}

	n, st := waitStage(t, &s.Board, "127.0.0.1", "image downloaded")
	if n.MAC != mac {
		t.Errorf("download recorded on node %q, want %s", n.MAC, mac)
	}
	if want := fmt.Sprintf("images/x.squashfs: %d bytes in ", imageSize); !strings.HasPrefix(st.Detail, want) || !strings.HasSuffix(st.Detail, " MB/s)") {
		t.Errorf("image downloaded detail = %q, want %q... MB/s)", st.Detail, want)
	}
	if got, want := stepDetail(n, "image download"), fmt.Sprintf("images/x.squashfs: started (%d bytes)", imageSize); got != want {
		t.Errorf("image download detail = %q, want %q", got, want)
	}
	if nodes := s.Board.Nodes(); len(nodes) != 1 {
		t.Errorf("board has %d nodes, want the one node: %+v", len(nodes), nodes)
	}

	// The checksum next to the image and a HEAD are not downloads.
	if resp, err := http.Get(hs.URL + "/images/x.squashfs.sha256"); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if resp, err := http.Head(hs.URL + "/images/x.squashfs"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	nodes := s.Board.Nodes()
	if last := nodes[0].Stage; len(nodes) != 1 || last != "image downloaded" {
		t.Errorf("after the .sha256 and a HEAD: %d nodes, last stage %q; want 1 and \"image downloaded\"", len(nodes), last)
	}
}

func TestImageRangeRecorded(t *testing.T) {
	s, hs, data := imageServer(t)
	req, err := http.NewRequest(http.MethodGet, hs.URL+"/images/x.squashfs", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", "bytes=0-1023")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[:1024]) {
		t.Fatalf("range GET: status %d, %d bytes; want 206 and the first 1024 bytes", resp.StatusCode, len(body))
	}

	// No node has this IP yet: the record is under the IP.
	n, st := waitStage(t, &s.Board, "127.0.0.1", "image downloaded")
	if !s.Board.Has("ip 127.0.0.1") || s.Board.KeyOfIP("127.0.0.1") != "" {
		t.Errorf("no record under ip 127.0.0.1, or the download bound the address to %q", s.Board.KeyOfIP("127.0.0.1"))
	}
	if !strings.HasPrefix(st.Detail, "images/x.squashfs: 1024 bytes in ") {
		t.Errorf("image downloaded detail = %q, want 1024 bytes", st.Detail)
	}
	if got, want := stepDetail(n, "image download"), fmt.Sprintf("images/x.squashfs: started (%d bytes, range bytes=0-1023)", imageSize); got != want {
		t.Errorf("image download detail = %q, want %q", got, want)
	}
}

func TestImageDownloadAborted(t *testing.T) {
	s, hs, _ := imageServer(t)
	c, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A small receive buffer, so the server cannot have handed the whole
	// image to the kernel by the time the client leaves.
	c.(*net.TCPConn).SetReadBuffer(16 << 10)
	fmt.Fprintf(c, "GET /images/x.squashfs HTTP/1.1\r\nHost: %s\r\n\r\n", hs.Listener.Addr())
	n, err := io.CopyN(io.Discard, bufio.NewReader(c), 64<<10)
	if err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	c.Close()

	_, st := waitStage(t, &s.Board, "127.0.0.1", "image download aborted")
	if want := fmt.Sprintf(" of %d bytes (client gone: ", imageSize); !strings.Contains(st.Detail, want) {
		t.Errorf("aborted detail = %q, want it to contain %q", st.Detail, want)
	}
	nodes := s.Board.Nodes()
	if len(nodes) != 1 || stepDetail(nodes[0], "image downloaded") != "" {
		t.Errorf("an aborted download is recorded as downloaded too: %+v", nodes)
	}
}

func TestImageDetailBounded(t *testing.T) {
	s, hs, data := imageServer(t)
	long := "images/" + strings.Repeat("é", 120) + ".squashfs" // 240 bytes of name
	if err := os.WriteFile(filepath.Join(s.Root, long), data[:4096], 0o644); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, hs.URL+"/"+long, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", "bytes=0-1,"+strings.Repeat("2-3,", 100)+"4-5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	n, _ := waitStage(t, &s.Board, "127.0.0.1", "image downloaded")
	if len(n.Steps) != 2 {
		t.Fatalf("steps = %+v, want started and downloaded", n.Steps)
	}
	for _, st := range n.Steps {
		if len(st.Detail) > maxDetail || !strings.HasPrefix(st.Detail, "images/é") {
			t.Errorf("%s detail is %d bytes, want at most %d: %q", st.Stage, len(st.Detail), maxDetail, st.Detail)
		}
	}
}

func TestAgentMAC(t *testing.T) {
	for ua, want := range map[string]string{
		"ramboot-init/v1 (mac=52:54:00:12:34:56)": "52:54:00:12:34:56",
		"ramboot-init/v1 (mac=52-54-00-12-34-56)": "52:54:00:12:34:56",
		"curl/8.0":      "",
		"x (mac=zz:zz)": "",
	} {
		if got := agentMAC(ua); got != want {
			t.Errorf("agentMAC(%q) = %q, want %q", ua, got, want)
		}
	}
}

// TestImageGenerationOnBoard: an image fetched through a channel (a link
// to a generation, tree/images) is recorded with the generation served.
func TestImageGenerationOnBoard(t *testing.T) {
	s, hs, data := imageServer(t)
	const mac = "aa:bb:cc:dd:ee:ff"
	s.Board.DHCP(mac, status.Node{MAC: mac, IP: "127.0.0.1", Kind: "pc"}, "dhcp ack", "", status.Bound)
	dir := filepath.Join(s.Root, "images")
	if err := os.Rename(filepath.Join(dir, "x.squashfs"), filepath.Join(dir, "x@0123456789ab.squashfs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("x@0123456789ab.squashfs", filepath.Join(dir, "x.squashfs")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(hs.URL + "/images/x.squashfs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, data) {
		t.Fatalf("GET through the channel: %d bytes, want %d", len(body), len(data))
	}
	waitFor(t, "the download on the board with its generation", func() bool {
		n, _ := s.Board.Node(mac)
		return strings.HasSuffix(stepDetail(n, "image downloaded"), "; generation x@0123456789ab.squashfs")
	})
}
