package site

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ramboot/ramboot/internal/atomicfile"
)

// PowerLogName is the log of power actions (ramboot node power), beside
// the state file: one line per action, "TIME KEY LINE", KEY the node's
// board key (its MAC, or its serial for a Pi listed by serial only).
const PowerLogName = "power.log"

// MaxPowerLog is the most bytes power.log keeps: past it, the older half
// is dropped at the next append.
const MaxPowerLog = 1 << 20

// PowerLogPath is power.log beside the state file state.
func PowerLogPath(state string) string {
	return filepath.Join(filepath.Dir(state), PowerLogName)
}

// LogPower appends one power action to power.log beside the state file:
// key is the node's MAC or serial, line what `ramboot node power` said of
// it. Best effort: a log that cannot be written is not a failed action.
func LogPower(state, key, line string) error {
	p := PowerLogPath(state)
	if st, err := os.Stat(p); err == nil && st.Size() > MaxPowerLog {
		if b, err := os.ReadFile(p); err == nil {
			b = b[len(b)/2:]
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				b = b[i+1:]
			}
			if err := atomicfile.Write(p, b, atomicfile.Options{NoSync: true}); err != nil {
				return err
			}
		}
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if key == "" {
		key = "-"
	}
	line = strings.ReplaceAll(line, "\n", " ")
	_, err = fmt.Fprintf(f, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339), key, line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// LastPower reads power.log and returns each node's last action by key,
// as "HH:MM:SS LINE" (the time in UTC). A missing log is no actions.
func LastPower(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	last := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		ts, rest, ok := strings.Cut(sc.Text(), " ")
		key, line, ok2 := strings.Cut(rest, " ")
		t, err := time.Parse(time.RFC3339, ts)
		if !ok || !ok2 || err != nil || key == "-" {
			continue // a line of the older format, or cut by a rotation
		}
		last[key] = t.UTC().Format("15:04:05") + " " + line
	}
	return last, sc.Err()
}
