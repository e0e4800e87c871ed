package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/server/status"
	"github.com/ramboot/ramboot/site/inventory"
)

// recBooter is a fake Booter: its lookup function, and the reports it was
// told.
type recBooter struct {
	BooterFunc
	mu   sync.Mutex
	told []string
	err  error
}

func (b *recBooter) NoteReport(mac net.HardwareAddr, server net.IP, stage, detail string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.told = append(b.told, mac.String()+" "+server.String()+" "+stage+" "+detail)
	return b.err
}

func (b *recBooter) reports() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.told...)
}

// TestBooterSeam: the protocols ask the Booter what a node gets (DHCP's
// option 224 with the server's address as DHCP saw it, the iPXE script's
// with the address it was asked on) and tell it only the reports the
// server believes from its own evidence; a report the Booter did not
// take is answered 503, so the node sends it again.
func TestBooterSeam(t *testing.T) {
	const mac, other = "52:54:00:12:34:71", "52:54:00:12:34:72"
	b := &recBooter{BooterFunc: func(hw net.HardwareAddr, serial string, server net.IP) (inventory.Match, bool, error) {
		if hw.String() != mac {
			return inventory.Match{}, false, nil
		}
		return inventory.Match{Hostname: "n71", Option224: "nfs://" + server.String() + "/srv/nfs/n71", Line: 7}, true, nil
	}}
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "manifest.json"), []byte(`{"board":"pc","arch":"amd64","kernel_file":"vmlinuz"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Root: root, ServerIP: net.IPv4(192, 0, 2, 1), Booter: b, Log: slog.New(slog.DiscardHandler)}
	s.neighborMAC = func(string) string { return "" }
	s.Board.DHCP(mac, status.Node{MAC: mac, IP: "127.0.0.1", Kind: "ramboot-init"}, "dhcp ack", "", status.Bound)

	if got := dhcp224(t, s, mac); got != "nfs://192.0.2.1/srv/nfs/n71" {
		t.Errorf("DHCP option 224 = %q", got)
	}
	if got := dhcp224(t, s, other); got != "" {
		t.Errorf("DHCP option 224 for a node the Booter does not know = %q", got)
	}

	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	resp, err := http.Get(hs.URL + "/boot/52-54-00-12-34-71.ipxe?arch=amd64")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), " ramboot.224=nfs://127.0.0.1/srv/nfs/n71 ") || !strings.Contains(string(body), "(nodes.yaml line 7)") {
		t.Errorf("iPXE script without the Booter's option 224 for the address asked on:\n%s", body)
	}

	post := func(who, stage, detail string) int {
		t.Helper()
		data, _ := json.Marshal(report.Report{MAC: who, Stage: stage, Detail: detail})
		resp, err := http.Post(hs.URL+report.Path, "application/json", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// 127.0.0.1 is mac's by the server's own DHCP ACK: its report for
	// another node never reaches the Booter.
	if code := post(other, "install done", "/dev/vda"); code != http.StatusForbidden {
		t.Errorf("a report for another node: %d, want 403", code)
	}
	if code := post(mac, "install done", "/dev/vda gen=1"); code != http.StatusNoContent {
		t.Errorf("the node's own report: %d, want 204", code)
	}
	want := []string{mac + " 192.0.2.1 install done /dev/vda gen=1"}
	if got := b.reports(); len(got) != 1 || got[0] != want[0] {
		t.Errorf("the Booter was told %q, want %q", got, want)
	}

	b.mu.Lock()
	b.err = errors.New("install state not recorded: disk full")
	b.mu.Unlock()
	if code := post(mac, "install done", "/dev/vda gen=1"); code != http.StatusServiceUnavailable {
		t.Errorf("a report the Booter did not take: %d, want 503", code)
	}
	if got := metric(scrape(t, hs.URL), `ramboot_errors_total{kind="report_not_recorded"}`); got != 1 {
		t.Errorf("report_not_recorded = %v, want 1", got)
	}
}
