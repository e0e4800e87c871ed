package e2e

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/lab"
)

// The nodes' own reports (issue 13 point 4), checked on boots the lab
// tests make anyway: the init reports its stages to `ramboot serve`, the
// status board shows them beside what the server saw, and /metrics has
// the node's reported stage.

// nodeReports waits until serve's /status.json (at base, inside the
// lab's namespace) has every stage in want reported by the node mac
// (step "by": "node"), and returns the node's reported stages in order.
func nodeReports(t *testing.T, l *lab.Lab, base, mac string, timeout time.Duration, want ...string) []string {
	t.Helper()
	var got []string
	var body string
	for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		var err error
		body, err = lab.Get(l.NS, base+"/status.json")
		var st struct {
			Nodes []struct {
				MAC   string
				Steps []struct{ Stage, Detail, By string }
			}
		}
		if err == nil && json.Unmarshal([]byte(body), &st) == nil {
			got = nil
			for _, n := range st.Nodes {
				for _, s := range n.Steps {
					if n.MAC == mac && s.By == "node" {
						got = append(got, s.Stage)
					}
				}
			}
			missing := false
			for _, w := range want {
				missing = missing || !slices.Contains(got, w)
			}
			if !missing {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("node %s reported %q to serve, want %q among them; status.json:\n%s", mac, got, want, body)
			return got
		}
	}
}

// metricsHave checks serve's /metrics for series matching each regexp.
func metricsHave(t *testing.T, l *lab.Lab, base string, want ...string) {
	t.Helper()
	body, err := lab.Get(l.NS, base+"/metrics")
	if err != nil {
		t.Errorf("GET /metrics: %v", err)
		return
	}
	for _, w := range want {
		if !regexp.MustCompile(`(?m)^` + w).MatchString(body) {
			var lines []string
			for _, line := range strings.Split(body, "\n") {
				if strings.HasPrefix(line, "ramboot_") {
					lines = append(lines, line)
				}
			}
			t.Errorf("/metrics has no %s:\n%s", w, strings.Join(lines, "\n"))
		}
	}
}
