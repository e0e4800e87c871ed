package site

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPowerLog: LastPower keeps each node's last action; the log stays
// within MaxPowerLog (the older half dropped, whole lines kept); a
// missing log is no actions, and a line of another shape is skipped.
func TestPowerLog(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	if last, err := LastPower(PowerLogPath(state)); err != nil || len(last) != 0 {
		t.Fatalf("no log: %v %v", last, err)
	}
	line := strings.Repeat("x", 100)
	for i := range 12000 {
		key := fmt.Sprintf("52:54:00:00:00:%02x", i%4)
		if err := LogPower(state, key, fmt.Sprintf("n%d: power status via command: on %d %s", i%4, i, line)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(PowerLogPath(state))
	if err != nil || st.Size() > MaxPowerLog+1000 {
		t.Fatalf("power.log: %v, %d bytes; bound %d", err, st.Size(), MaxPowerLog)
	}
	f, _ := os.OpenFile(PowerLogPath(state), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("a line of the old format\n")
	f.Close()
	last, err := LastPower(PowerLogPath(state))
	if err != nil || len(last) != 4 || !strings.Contains(last["52:54:00:00:00:03"], "on 11999 ") {
		t.Errorf("last actions: %d, %v; 52:54:00:00:00:03's %q, want its action 11999", len(last), err, last["52:54:00:00:00:03"])
	}
}
