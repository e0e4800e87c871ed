package status

import (
	"fmt"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestKeyOfIP(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &Board{Now: func() time.Time { now = now.Add(time.Second); return now }}
	if got := b.KeyOfIP("10.0.0.5"); got != "" {
		t.Fatalf("empty board: KeyOfIP = %q, want \"\"", got)
	}
	b.DHCP("aa:aa:aa:aa:aa:aa", Node{MAC: "aa:aa:aa:aa:aa:aa", IP: "10.0.0.5"}, "dhcp ack", "", Bound)
	b.DHCP("bb:bb:bb:bb:bb:bb", Node{MAC: "bb:bb:bb:bb:bb:bb", IP: "10.0.0.6"}, "dhcp ack", "", Bound)
	if got := b.KeyOfIP("10.0.0.5"); got != "aa:aa:aa:aa:aa:aa" {
		t.Errorf("KeyOfIP(10.0.0.5) = %q, want aa:aa:aa:aa:aa:aa", got)
	}
	// The address moves to another node: the most recent grant wins.
	b.DHCP("cc:cc:cc:cc:cc:cc", Node{MAC: "cc:cc:cc:cc:cc:cc", IP: "10.0.0.5"}, "dhcp ack", "", Bound)
	if got := b.KeyOfIP("10.0.0.5"); got != "cc:cc:cc:cc:cc:cc" {
		t.Errorf("after a newer grant, KeyOfIP(10.0.0.5) = %q, want cc:cc:cc:cc:cc:cc", got)
	}
	// A later step without an IP keeps the node's address.
	b.DHCP("cc:cc:cc:cc:cc:cc", Node{}, "dhcp offer", "", Bound)
	b.Record("cc:cc:cc:cc:cc:cc", Node{}, "tftp read", "start4.elf")
	if got := b.KeyOfIP("10.0.0.5"); got != "cc:cc:cc:cc:cc:cc" {
		t.Errorf("after cc's newer steps, KeyOfIP(10.0.0.5) = %q, want cc:cc:cc:cc:cc:cc", got)
	}
	// A node granted another address leaves the old one.
	b.DHCP("bb:bb:bb:bb:bb:bb", Node{IP: "10.0.0.16"}, "dhcp ack", "", Bound)
	if got, old := b.KeyOfIP("10.0.0.16"), b.KeyOfIP("10.0.0.6"); got != "bb:bb:bb:bb:bb:bb" || old != "" {
		t.Errorf("bb moved to 10.0.0.16: KeyOfIP = %q, and %q at its old address", got, old)
	}
	for _, ip := range []string{"10.0.0.7", ""} {
		if got := b.KeyOfIP(ip); got != "" {
			t.Errorf("KeyOfIP(%q) = %q, want \"\"", ip, got)
		}
	}
}

// Only DHCP ties an address, a serial or a node to a MAC: steps recorded
// from what any client may send (a TFTP path, a User-Agent), a DHCP step
// that grants nothing and a report show the address, never bind it.
func TestOnlyDHCPBinds(t *testing.T) {
	b := &Board{}
	const victim, other = "52:54:00:ab:cd:ef", "52:54:00:12:34:56"
	b.DHCP(victim, Node{MAC: victim, Serial: "aabbccdd", IP: "10.0.0.7"}, "dhcp ack", "", Bound)
	b.Record(victim, Node{MAC: victim, Serial: "11223344", IP: "10.0.0.66"}, "tftp read", "52-54-00-ab-cd-ef/x")
	b.Record(other, Node{MAC: other, IP: "10.0.0.67"}, "image download", "ua")
	b.DHCP(other, Node{MAC: other, IP: "10.0.0.68"}, "dhcp offer", "", Seen)
	b.Report(other, Node{MAC: other, IP: "10.0.0.69"}, "install done", "")
	for ip, want := range map[string]string{"10.0.0.7": victim, "10.0.0.66": "", "10.0.0.67": "", "10.0.0.68": "", "10.0.0.69": ""} {
		if got := b.KeyOfIP(ip); got != want {
			t.Errorf("KeyOfIP(%s) = %q, want %q", ip, got, want)
		}
	}
	if got := b.MACOfSerial("aabbccdd"); got != victim {
		t.Errorf("MACOfSerial(aabbccdd) = %q, want the DHCP-seen %s", got, victim)
	}
	if got := b.MACOfSerial("11223344"); got != "" {
		t.Errorf("a serial recorded from a TFTP path maps to %q", got)
	}
	b.Record("02:00:00:00:00:01", Node{MAC: "02:00:00:00:00:01"}, "tftp read", "x")
	if !b.SawDHCP(victim) || !b.SawDHCP(other) || b.SawDHCP("02:00:00:00:00:01") {
		t.Errorf("SawDHCP: victim %v, other %v, a TFTP-only MAC %v; want true, true, false",
			b.SawDHCP(victim), b.SawDHCP(other), b.SawDHCP("02:00:00:00:00:01"))
	}
	// The serial moves with DHCP: a new serial for the MAC replaces the old.
	b.DHCP(victim, Node{Serial: "aabbccde"}, "dhcp discover", "", Seen)
	if a, c := b.MACOfSerial("aabbccdd"), b.MACOfSerial("aabbccde"); a != "" || c != victim {
		t.Errorf("after a new serial: old maps to %q, new to %q", a, c)
	}
}

// The board keeps the pinned (inventory) nodes plus MaxOthers others, the
// least recently seen dropped first, and its indexes forget dropped nodes.
func TestBoardBounds(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &Board{MaxOthers: 3, Now: func() time.Time { now = now.Add(time.Second); return now }}
	const inv = "dc:a6:32:01:36:c2"
	b.SetPinned([]string{inv, "9ffefdef"})
	b.DHCP(inv, Node{MAC: inv, Serial: "1234abcd", IP: "10.0.0.2"}, "dhcp ack", "", Bound)
	b.Record("9ffefdef", Node{Serial: "9ffefdef"}, "tftp served", "9ffefdef/start4.elf")
	b.DHCP("aa:aa:aa:aa:aa:aa", Node{MAC: "aa:aa:aa:aa:aa:aa", Serial: "aaaaaaaa", IP: "10.0.0.9"}, "dhcp ack", "", Bound)
	for i := range 10 {
		b.Record(fmt.Sprintf("%08x", i), Node{Serial: fmt.Sprintf("%08x", i), IP: "10.0.0.66"}, "tftp not-found", "x")
		if i == 8 {
			b.Record("00000007", Node{}, "tftp not-found", "again") // seen again: now the most recent
		}
	}
	keys := func() []string {
		var k []string
		for _, n := range b.Nodes() {
			k = append(k, n.Serial)
		}
		return k
	}
	// Most recently seen first: 9, 7 (seen again after 8), 8, then the
	// pinned ones, seen before all of them.
	want := []string{"00000009", "00000007", "00000008", "9ffefdef", "1234abcd"}
	if got := keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("nodes (by serial) %v, want %v", got, want)
	}
	if got := b.MACOfSerial("aaaaaaaa"); got != "" {
		t.Errorf("MACOfSerial of a dropped node = %q", got)
	}
	if got := b.MACOfSerial("1234abcd"); got != inv {
		t.Errorf("MACOfSerial(1234abcd) = %q, want %s", got, inv)
	}
	if got := b.KeyOfIP("10.0.0.9"); got != "" {
		t.Errorf("KeyOfIP of a dropped node = %q", got)
	}
	if got := b.KeyOfIP("10.0.0.66"); got != "" {
		t.Errorf("KeyOfIP(10.0.0.66) = %q: TFTP records bind no address", got)
	}
	if got := b.KeyOfIP("10.0.0.2"); got != inv {
		t.Errorf("KeyOfIP(10.0.0.2) = %q, want the pinned %s", got, inv)
	}
	// Unpinned (the inventory changed): they are the least recently seen
	// now, so they go first.
	b.SetPinned([]string{"9ffefdef"})
	want = []string{"00000009", "00000007", "00000008", "9ffefdef"}
	if got := keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after unpinning: %v, want %v", got, want)
	}
	if got := b.MACOfSerial("1234abcd"); got != "" {
		t.Errorf("MACOfSerial of an unpinned, dropped node = %q", got)
	}
}

// Keys, details and fields from clients are cut; steps are bounded; a
// flood of made-up keys keeps the board at its bound, fast.
func TestBoardTruncationAndFlood(t *testing.T) {
	b := &Board{}
	long := strings.Repeat("é", 5000) // 10 kB, two bytes a rune
	b.Record(long, Node{Serial: long, Hostname: long}, long, long)
	for i := 0; i < 40; i++ {
		b.Record(long, Node{}, "step", fmt.Sprint(i))
	}
	n := b.Nodes()
	if len(n) != 1 {
		t.Fatalf("%d nodes, want 1", len(n))
	}
	for name, v := range map[string]string{"serial": n[0].Serial, "hostname": n[0].Hostname, "detail": n[0].Steps[0].Detail} {
		if len(v) > MaxField || !utf8.ValidString(v) {
			t.Errorf("%s: %d bytes (valid UTF-8 %v), want at most %d", name, len(v), utf8.ValidString(v), MaxField)
		}
	}
	if len(n[0].Steps) != DefaultMaxSteps || n[0].Steps[DefaultMaxSteps-1].Detail != "39" || n[0].Steps[0].Detail != "8" {
		t.Errorf("%d steps from %q to %q, want %d from 8 to 39", len(n[0].Steps), n[0].Steps[0].Detail, n[0].Steps[len(n[0].Steps)-1].Detail, DefaultMaxSteps)
	}
	if b.KeyOfIP("") != "" || b.MACOfSerial(long) != "" {
		t.Error("lookups of a node without MAC or IP answered")
	}

	// 50,000 requests under made-up serials, each with a long path.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	path := strings.Repeat("x", 4096)
	for i := range 50_000 {
		s := fmt.Sprintf("%08x", i)
		b.Record(s, Node{Serial: s, IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}, "tftp not-found", s+"/"+path)
	}
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := b.Len(); got != DefaultMaxOthers {
		t.Errorf("%d nodes after the flood, want %d", got, DefaultMaxOthers)
	}
	b.mu.Lock()
	idx := len(b.bySerial) + len(b.byIP)
	b.mu.Unlock()
	if idx > DefaultMaxOthers {
		t.Errorf("indexes hold %d keys, want at most %d", idx, DefaultMaxOthers)
	}
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("50000 records in %v; board holds %d nodes, heap grew %.1f MB", took.Round(time.Millisecond), b.Len(), float64(grew)/1e6)
	if grew > 8<<20 {
		t.Errorf("heap grew %d bytes, want under 8 MB", grew)
	}
	if took > 10*time.Second {
		t.Errorf("50000 records took %v: not O(1) per record?", took)
	}
}

func TestReportBesideServerStage(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &Board{Now: func() time.Time { now = now.Add(time.Second); return now }}
	const mac = "52:54:00:12:34:56"
	b.Record(mac, Node{MAC: mac, Kind: "ramboot-init"}, "dhcp offer", `option 224 "shell"`)
	if n, _ := b.Node(mac); n.Reported != nil {
		t.Fatalf("before any report: Reported = %+v", n.Reported)
	}
	b.Report(mac, Node{IP: "192.0.2.120"}, "switch_root", "/newroot")
	n, ok := b.Node(mac)
	if !ok {
		t.Fatal("node gone")
	}
	if n.Stage != "dhcp offer" || n.Reported == nil || n.Reported.Stage != "switch_root" || n.Reported.By != ByNode {
		t.Errorf("server stage %q, reported %+v; want dhcp offer and the node's switch_root", n.Stage, n.Reported)
	}
	if len(n.Steps) != 2 || n.Steps[0].By != "" || n.Steps[1].By != ByNode || !n.Last.Equal(n.Reported.At) {
		t.Errorf("steps %+v, last %v", n.Steps, n.Last)
	}
	if n.IP != "192.0.2.120" || b.KeyOfIP("192.0.2.120") != "" {
		t.Errorf("the report's source address: shown %q, bound to %q; want shown, not bound", n.IP, b.KeyOfIP("192.0.2.120"))
	}
	// Copies: changing the one returned leaves the board alone.
	n.Reported.Stage = "x"
	if m, _ := b.Node(mac); m.Reported.Stage != "switch_root" {
		t.Errorf("Node returned the board's own Reported")
	}
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	if page := rec.Body.String(); !strings.Contains(page, "reported by the node") || !strings.Contains(page, "<b>switch_root</b> ") || !strings.Contains(page, "<small>/newroot") {
		t.Errorf("the status page does not show the node's report:\n%s", page)
	}
	rec = httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest("GET", "/status.json", nil))
	if js := rec.Body.String(); !strings.Contains(js, `"reported":{"at":`) || !strings.Contains(js, `"by":"node"`) {
		t.Errorf("status.json does not mark the node's report:\n%s", js)
	}
}

// TestPageRoster: the page lists the inventory's nodes it has not seen
// (and says how many), names a seen node by its inventory hostname,
// shows the last power action and the generation, and the counts in the
// head add up.
func TestPageRoster(t *testing.T) {
	var b Board
	b.SetRoster([]Node{
		{MAC: "52:54:00:00:00:01", Hostname: "rack1-n01", IP: "192.0.2.11"},
		{MAC: "52:54:00:00:00:02", Hostname: "rack1-n02"},
		{Serial: "10000000abcdef01", Hostname: "pi-7"},
	})
	b.SetPower(map[string]string{"52:54:00:00:00:02": "23:40:01 rack1-n02: power off via poe 192.0.2.1:161 port 1.2: off (0s)"})
	b.SetInstall(map[string]string{"52:54:00:00:00:01": "installed (gen 2)", "52:54:00:00:00:02": "installing (gen 1)"})
	b.Record("52:54:00:00:00:01", Node{MAC: "52:54:00:00:00:01", IP: "192.0.2.11", Generation: "debian@20261207-ab12cd34.squashfs"}, "image downloaded", "images/debian.squashfs: 5 bytes")
	b.Record("aa:aa:aa:aa:aa:aa", Node{MAC: "aa:aa:aa:aa:aa:aa"}, "dhcp discover", "")
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	page := rec.Body.String()
	for _, want := range []string{
		"<title>ramboot: 4 nodes</title>", "2 seen, 2 listed in nodes.yaml and not seen yet",
		`<td data-v="rack1-n01" title="rack1-n01">rack1-n01<small><code>52:54:00:00:00:01</code> </small>`,
		`<td title="debian@20261207-ab12cd34.squashfs">debian@20261207-ab12cd34.squashfs</td>`,
		`<tr data-stage="" class="unseen"><td data-v="rack1-n02"`, "power off via poe", `<td data-v="3221225995">192.0.2.11</td>`,
		`<td data-v="pi-7" title="pi-7">pi-7<small><code>10000000abcdef01</code>`,
		`<td data-v="aa:aa:aa:aa:aa:aa" title="aa:aa:aa:aa:aa:aa">aa:aa:aa:aa:aa:aa<small></small>`,
		`<td title="installed (gen 2)">installed (gen 2)</td>`, `<td title="installing (gen 1)">installing (gen 1)</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/status lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page)
	}
	// A serial-listed Pi seen by DHCP under its MAC is not listed twice.
	b.DHCP("dc:a6:32:00:00:07", Node{MAC: "dc:a6:32:00:00:07", Serial: "10000000abcdef01"}, "dhcp discover", "", Seen)
	rec = httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	if page := rec.Body.String(); !strings.Contains(page, "3 seen, 1 listed in nodes.yaml and not seen yet") || strings.Count(page, `<td data-v="pi-7"`) != 1 || !strings.Contains(page, `pi-7<small><code>dc:a6:32:00:00:07</code> <code>10000000abcdef01</code>`) {
		t.Errorf("after DHCP saw the Pi by its serial, the page still lists it as not seen, or not by its hostname")
	}
}
