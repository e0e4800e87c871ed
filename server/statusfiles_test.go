package server

import (
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/site"
)

// TestStatusFiles: the status page shows a node's last power action from
// power.log and its install state from the state file, reads each again
// when it changes, and shows neither once the file is gone.
func TestStatusFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := lcServer(t, dir, "nodes:\n  - mac: 52:54:00:12:34:61\n    hostname: web-1\n")
	state := s.ownSite().StatePath()
	page := func() string {
		rec := httptest.NewRecorder()
		s.refreshStatusFiles()
		s.Board.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
		return rec.Body.String()
	}
	if p := page(); strings.Contains(p, "power on") || strings.Contains(p, "installed") {
		t.Fatalf("a page with no power.log and no state shows some:\n%s", p)
	}
	if err := site.LogPower(state, "52:54:00:12:34:61", "web-1: power on via ipmi 192.0.2.50:623: on (6s)"); err != nil {
		t.Fatal(err)
	}
	if err := site.UpdateState(state, func(st *site.State) error {
		st.Nodes["52:54:00:12:34:61"] = &site.NodeState{State: "installed", Generation: 3, Since: time.Unix(1, 0)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p := page()
	if !strings.Contains(p, "web-1: power on via ipmi 192.0.2.50:623: on (6s)") || !strings.Contains(p, ">installed (gen 3)</td>") {
		t.Errorf("the page lacks the power action or the install state:\n%s", p)
	}
	// A change is read again (power.log grows; the state file is replaced).
	site.LogPower(state, "52:54:00:12:34:61", "web-1: power off via ipmi 192.0.2.50:623: off (6s)")
	site.UpdateState(state, func(st *site.State) error {
		st.Nodes["52:54:00:12:34:61"].ReinstallRequested = true
		return nil
	})
	if p := page(); !strings.Contains(p, "power off via ipmi") || strings.Contains(p, "power on via ipmi") || !strings.Contains(p, "installed (gen 3), reinstall asked") {
		t.Errorf("after the changes the page shows:\n%s", p)
	}
	os.Remove(site.PowerLogPath(state))
	os.Remove(state)
	if p := page(); strings.Contains(p, "power off") || strings.Contains(p, "installed (gen") {
		t.Errorf("with both files gone the page still shows them")
	}
}
