package server

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ramboot/ramboot/site"
)

// fileView is what the status page last read of a file beside the state
// file: it is read again only when its size or time changes.
type fileView struct {
	mod  time.Time
	size int64
}

// changed stats path and says whether it changed since the last call
// (gone counts as a change to "empty").
func (v *fileView) changed(path string) (changed, exists bool) {
	fi, err := os.Stat(path)
	if err != nil {
		changed = v.size != 0 || !v.mod.IsZero()
		*v = fileView{}
		return changed, false
	}
	if fi.ModTime().Equal(v.mod) && fi.Size() == v.size {
		return false, true
	}
	v.mod, v.size = fi.ModTime(), fi.Size()
	return true, true
}

// statusFiles is what the status page last read of power.log and the
// state file, one look at a time.
type statusFiles struct {
	mu             sync.Mutex
	power, install fileView
}

// refreshStatusFiles puts on the status board what `ramboot node` keeps
// beside the state file, when it changed since the last look: each
// node's last power action (power.log) and its install state
// (state.json). Without a state file of its own (a Booter given) the
// server has neither.
func (s *Server) refreshStatusFiles() {
	st := s.ownSite()
	if st == nil || st.StatePath() == "" {
		return
	}
	state := st.StatePath()
	v := &s.statusFiles
	v.mu.Lock()
	defer v.mu.Unlock()
	p := site.PowerLogPath(state)
	if changed, exists := v.power.changed(p); changed {
		last := map[string]string{}
		if exists {
			var err error
			if last, err = site.LastPower(p); err != nil {
				s.log().Warn("power.log", "path", p, "err", err)
				v.power = fileView{} // read it again next time
			}
		}
		s.Board.SetPower(last)
	}
	if changed, exists := v.install.changed(state); changed {
		install := map[string]string{}
		if exists {
			if rec, err := site.ReadState(state); err == nil {
				for mac, n := range rec.Nodes {
					install[mac] = installText(n)
				}
			} else {
				v.install = fileView{}
			}
		}
		s.Board.SetInstall(install)
	}
}

// installText is a node's install state in a few words.
func installText(n *site.NodeState) string {
	t := n.State
	if t == "" {
		t = "not installed"
	}
	if n.Generation > 0 {
		t += fmt.Sprintf(" (gen %d)", n.Generation)
	}
	if n.ReinstallRequested {
		t += ", reinstall asked"
	}
	return t
}
