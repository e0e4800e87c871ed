package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeFacts: a node's facts are taken from its own address (the
// status record gets its hardware line, the site keeps them, the metrics
// show its memory and disks), refused from another's, too big or
// malformed.
func TestServeFacts(t *testing.T) {
	root, _, _ := bootTree(t, false)
	nodes := filepath.Join(t.TempDir(), "nodes.yaml")
	os.WriteFile(nodes, []byte("nodes:\n  - mac: "+piMAC+"\n    hostname: pi-1\n"), 0o644)
	s := &Server{Nodes: nodes}
	neigh := piMAC
	s.neighborMAC = func(string) string { return neigh }
	addr, _ := bootServer(t, s, root)
	if err := s.openSite(); err != nil {
		t.Fatal(err)
	}
	dhcpSeen(s, piMAC, piSerial)
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+addr+"/facts", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	good := fmt.Sprintf(`{"mac":%q,"model":"Raspberry Pi 4 Model B Rev 1.4","cores":4,"memory_bytes":4124000256,`+
		`"disks":[{"name":"mmcblk0","bytes":31914983424},{"name":"sda","bytes":500107862016,"removable":true}],`+
		`"nics":[{"name":"eth0","mac":%q,"driver":"bcmgenet","speed_mbps":1000}],"temp_millic":48692}`, piMAC, piMAC)
	if code, body := post(good); code != http.StatusNoContent {
		t.Fatalf("facts from the node: %d %s", code, body)
	}
	n, _ := s.Board.Node(piMAC)
	if !strings.HasPrefix(n.Hardware, "Raspberry Pi 4 Model B Rev 1.4; 4 cores (-); 3932 MB; disks: mmcblk0 31.9 GB, sda 500.1 GB; NICs: eth0 bcmgenet 1000 Mb/s") {
		t.Errorf("the node's hardware line: %q", n.Hardware)
	}
	if f, ok := s.booter().Facts(piMAC); !ok || f.MemoryBytes != 4124000256 || len(f.Disks) != 2 || f.IP != "127.0.0.1" {
		t.Errorf("the site's facts: %+v, %v", f, ok)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`ramboot_node_memory_bytes{mac="` + piMAC + `",node="pi-1"} 4.124000256e+09`,
		`ramboot_node_disks{mac="` + piMAC + `",node="pi-1"} 2`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	for _, tc := range []struct {
		name, body string
		code       int
	}{
		{"malformed", `{"mac":`, http.StatusBadRequest},
		{"too many disks", fmt.Sprintf(`{"mac":%q,"disks":[%s{"name":"x"}]}`, piMAC, strings.Repeat(`{"name":"x"},`, 64)), http.StatusBadRequest},
		{"too big", fmt.Sprintf(`{"mac":%q,"model":%q}`, piMAC, strings.Repeat("x", 17<<10)), http.StatusRequestEntityTooLarge},
	} {
		if code, body := post(tc.body); code != tc.code {
			t.Errorf("%s: %d %s; want %d", tc.name, code, body, tc.code)
		}
	}
	// Another node's facts from this address: refused, nothing kept.
	neigh = "dc:a6:32:99:99:99"
	if code, _ := post(strings.Replace(good, "Rev 1.4", "Rev 9.9", 1)); code != http.StatusForbidden {
		t.Errorf("facts for %s from another node's address: %d, want 403", piMAC, code)
	}
	if f, _ := s.booter().Facts(piMAC); strings.Contains(f.Model, "9.9") {
		t.Error("the refused facts were kept")
	}
}
