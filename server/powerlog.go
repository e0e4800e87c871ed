package server

import (
	"os"
	"sync"
	"time"

	"github.com/ramboot/ramboot/site"
)

// powerView is what the status page last read of power.log (the log
// `ramboot node power` appends to beside the state file): it is read
// again only when its size or time changes.
type powerView struct {
	mu   sync.Mutex
	mod  time.Time
	size int64
}

// refreshPower puts each node's last power action on the status board
// if power.log changed since the last look. Without a state file of its
// own (a Booter given) the server has no power.log.
func (s *Server) refreshPower() {
	st := s.ownSite()
	if st == nil || st.StatePath() == "" {
		return
	}
	p := site.PowerLogPath(st.StatePath())
	s.power.mu.Lock()
	defer s.power.mu.Unlock()
	fi, err := os.Stat(p)
	if err != nil {
		if s.power.size != 0 || !s.power.mod.IsZero() {
			s.Board.SetPower(nil)
			s.power.mod, s.power.size = time.Time{}, 0
		}
		return
	}
	if fi.ModTime().Equal(s.power.mod) && fi.Size() == s.power.size {
		return
	}
	last, err := site.LastPower(p)
	if err != nil {
		s.log().Warn("power.log", "path", p, "err", err)
		return
	}
	s.Board.SetPower(last)
	s.power.mod, s.power.size = fi.ModTime(), fi.Size()
}
