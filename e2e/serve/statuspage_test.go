package serve

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
	"github.com/ramboot/ramboot/e2e/testlog"
	"github.com/ramboot/ramboot/internal/testenv"
)

// The status page at a rack's scale, in a real browser: 1,000 nodes in
// nodes.yaml (one of them the QEMU guest TestServeInitProxy224 boots,
// with its real facts), 400 of them and 30 unknown nodes seen, a power
// action taken with `ramboot node power`; headless Chromium loads the
// page, its screenshot is kept, any console message fails the test, and
// the page's own script sorts and filters as its address's fragment asks.

const (
	spRacks   = 10
	spPerRack = 100 // spRacks*spPerRack nodes in nodes.yaml with the guest
	spSeen    = 400
	spUnknown = 30
)

// spMAC is rack node i's MAC (i from 0).
func spMAC(i int) string { return fmt.Sprintf("52:54:00:a0:%02x:%02x", i>>8, i&0xff) }

// spName is rack node i's hostname: rack1-n001 ...
func spName(i int) string { return fmt.Sprintf("rack%d-n%03d", i/spPerRack+1, i%spPerRack+1) }

// statusPageNodes is nodes.yaml's defaults, a power: whose command
// driver says every node is on, and its nodes besides the guest
// (spRacks*spPerRack-1 entries).
func statusPageNodes(t *testing.T, dir string) (defaults, nodes string) {
	pdu := filepath.Join(dir, "pdu")
	lab.WriteFile(t, pdu, "#!/bin/sh\n# a PDU for the status page test: ACTION NAME MAC\ncase $1 in status) echo on;; esac\n")
	if err := os.Chmod(pdu, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range spRacks*spPerRack - 1 {
		fmt.Fprintf(&b, "  - mac: %s\n    hostname: %s\n", spMAC(i), spName(i))
	}
	return fmt.Sprintf("defaults:\n  power: {driver: command, command: %s}\n", pdu), b.String()
}

// checkStatusPage runs once the guest (node-7, 52:54:00:12:34:56) has
// reported its facts.
func checkStatusPage(t *testing.T, l *lab.Lab, nodesFile string) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Skip(t, "chromium not found: run e2e/deps.sh (package chromium)")
	}
	// 400 of the rack's nodes and 30 unknown ones ask for their boot
	// scripts, 8 at a time.
	peer := l.Peer(t, "192.0.2.30")
	c, done := lab.Client(peer.NS)
	defer done()
	var urls []string
	for i := range spSeen + spUnknown {
		mac := spMAC(i * 2) // every other node: the racks' first 800
		if i >= spSeen {
			mac = fmt.Sprintf("02:5c:00:00:00:%02x", i-spSeen)
		}
		urls = append(urls, "http://"+lab.Addr+":8080/boot/"+strings.ReplaceAll(mac, ":", "-")+".ipxe")
	}
	if err := lab.GetAll(c, urls, 8); err != nil {
		t.Fatalf("the nodes' script requests: %v", err)
	}
	// A power action, through the CLI, as an operator takes it.
	out, err := exec.Command("ip", "netns", "exec", l.NS, cache.Ramboot(t), "node", "power", "status", spName(4), spName(5),
		"--nodes", nodesFile, "--lease-file", filepath.Join(l.Dir, "leases.json")).CombinedOutput()
	if err != nil {
		t.Fatalf("ramboot node power status: %v\n%s", err, out)
	}
	t.Logf("node power status: %s", strings.TrimSpace(string(out)))

	browse := func(fragment string, extra ...string) (stdout, stderr string) {
		t.Helper()
		args := append([]string{"netns", "exec", l.NS, chromium, "--headless", "--no-sandbox", "--disable-gpu",
			"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0", "--window-size=1600,1000",
			"--virtual-time-budget=5000"}, extra...)
		cmd := exec.Command("ip", append(args, "http://"+lab.Addr+":8080/status"+fragment)...)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		t0 := time.Now()
		if err := runTimeout(cmd, 60*time.Second); err != nil {
			t.Fatalf("chromium %s: %v\n%s", fragment, err, qemu.TailLines(e.String(), 20))
		}
		t.Logf("chromium %s: %.1fs", fragment, time.Since(t0).Seconds())
		for _, line := range strings.Split(e.String(), "\n") {
			if strings.Contains(line, ":CONSOLE") {
				t.Errorf("the browser's console (%s): %s", fragment, line)
			}
		}
		return o.String(), e.String()
	}

	shot := testlog.Keep(t, "status-page.png")
	browse("", "--screenshot="+shot)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10<<10 {
		t.Errorf("screenshot %s: %v", shot, err)
	} else {
		t.Logf("screenshot: %s (%d KB)", shot, st.Size()>>10)
	}

	total := spRacks*spPerRack + spUnknown
	rowRE := regexp.MustCompile(`(?s)<tr data-stage="([^"]*)"([^>]*)>(.*?)</tr>`)
	cellRE := regexp.MustCompile(`(?s)<td[^>]*?(?: data-v="([^"]*)")?[^>]*>(.*?)</td>`)
	type row struct {
		hidden bool
		text   string
		v      []string // each cell's data-v
	}
	rows := func(dom string) []row {
		var rs []row
		for _, m := range rowRE.FindAllStringSubmatch(dom, -1) {
			r := row{hidden: strings.Contains(m[2], "hidden"), text: m[3]}
			for _, c := range cellRE.FindAllStringSubmatch(m[3], -1) {
				r.v = append(r.v, c[1])
			}
			rs = append(rs, r)
		}
		return rs
	}

	// Filtered to rack 2, the most recently seen first.
	dom, _ := browse("#q=rack2&sort=seen&desc=1", "--dump-dom")
	rs := rows(dom)
	if len(rs) != total {
		t.Fatalf("the page has %d rows, want %d (1,000 listed, %d unknown seen)", len(rs), total, spUnknown)
	}
	shown, last := 0, int64(-1)
	for _, r := range rs {
		if r.hidden {
			if strings.Contains(r.text, "rack2-") {
				t.Errorf("a rack2 row is hidden by the filter rack2: %.120s", r.text)
			}
			continue
		}
		shown++
		if !strings.Contains(r.text, "rack2-") {
			t.Errorf("a row without rack2 is shown with the filter rack2: %.120s", r.text)
		}
		ms, _ := strconv.ParseInt(r.v[len(r.v)-1], 10, 64)
		if last >= 0 && ms > last {
			t.Errorf("sorted by last seen, newest first: %d after %d", ms, last)
		}
		last = ms
	}
	if want := fmt.Sprintf("%d of %d nodes shown", spPerRack, total); shown != spPerRack || !strings.Contains(dom, want) {
		t.Errorf("rack2: %d rows shown; the page says %q, want %q", shown, regexp.MustCompile(`\d+ of \d+ nodes shown`).FindString(dom), want)
	}
	if !strings.Contains(dom, `data-col="seen" aria-sort="descending"`) {
		t.Errorf("the last seen column is not marked as sorted, newest first")
	}
	// The per-stage counts: 400 asked for a script, the guest is a shell.
	for _, want := range []string{fmt.Sprintf(">ipxe script: %d</button>", spSeen+spUnknown), fmt.Sprintf(">not seen: %d</button>", spRacks*spPerRack-1-spSeen)} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page's counts lack %q", want)
		}
	}

	// Sorted by hardware, descending: the guest, the only node with facts,
	// first; its power and memory on its row; the power action on rack
	// node 5's.
	dom, _ = browse("#sort=hardware&desc=1", "--dump-dom")
	os.WriteFile(testlog.Keep(t, "status-dom.html"), []byte(dom), 0o644)
	rs = rows(dom)
	if len(rs) == 0 || !strings.Contains(rs[0].text, "node-7") || !regexp.MustCompile(`linux,dummy-virt; 2 cores.*MB`).MatchString(rs[0].text) {
		first := ""
		if len(rs) > 0 {
			first = rs[0].text
		}
		t.Errorf("sorted by hardware, the first row is not the guest with its facts: %.300s", first)
	}
	for _, r := range rs {
		if strings.Contains(r.text, ">"+spName(5)+"<") {
			if !regexp.MustCompile(`\d\d:\d\d:\d\d ` + spName(5) + `: power status via command \S+: on \(`).MatchString(r.text) {
				t.Errorf("%s's row does not show its power action: %.400s", spName(5), r.text)
			}
			if !strings.Contains(r.text, "not seen") {
				t.Errorf("%s's row: seen, but no node asked for its script: %.400s", spName(5), r.text)
			}
		}
	}
}

// runTimeout runs cmd in a process group of its own, killing the group
// after d (the browser's helpers with it).
func runTimeout(cmd *exec.Cmd, d time.Duration) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	timer := time.AfterFunc(d, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer timer.Stop()
	return cmd.Wait()
}
