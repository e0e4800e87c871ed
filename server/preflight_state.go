package server

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/site"
	"github.com/ramboot/ramboot/site/inventory"
)

// preflightState names the install state file (so that an operator can
// check that `ramboot node` reads the same one) and checks it as Run
// would: a corrupt file is a problem; a directory this user cannot write
// is one too when the inventory has installs (their outcomes could not be
// recorded, and every such node would install again at each boot).
func (s *Server) preflightState(p *Preflight) {
	if s.Nodes == "" && s.StateFile == "" {
		return
	}
	sf := s.stateFile()
	st, err := site.ReadState(sf)
	if err != nil {
		p.problem("--state-file: %v", err)
		return
	}
	p.ok("install state: %s (%d records; ramboot node --config reads the same file)", sf, len(st.Nodes))
	if !s.inventoryInstalls() {
		return
	}
	dir := filepath.Dir(sf)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		p.problem("install state %s: directory %s does not exist: create it or pass --state-file", sf, dir)
	} else if err := unix.Access(dir, unix.W_OK); err != nil {
		p.problem("install state %s: directory %s is not writable by this user (%v): pass --state-file in a writable directory (under systemd, StateDirectory)", sf, dir, err)
	}
}

// inventoryInstalls reports whether any node of nodes.yaml, or its
// defaults, has install: (a file that does not load says no: its
// problems are reported by the inventory's check).
func (s *Server) inventoryInstalls() bool {
	if s.Nodes == "" {
		return false
	}
	inv, err := inventory.Load(s.Nodes)
	if err != nil {
		return false
	}
	if inv.Defaults.Install != nil {
		return true
	}
	for _, n := range inv.Nodes {
		if n.Install != nil {
			return true
		}
	}
	return false
}
