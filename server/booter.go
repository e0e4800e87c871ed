package server

import (
	"fmt"
	"net"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/site"
	"github.com/ramboot/ramboot/site/inventory"
)

// Booter is what the protocols ask the site model: what a node gets now,
// and the install outcomes to record. *site.Site (nodes.yaml and the
// install state file) is the one `ramboot serve` uses; tests fake it with
// BooterFunc.
//
// Who a node is stays the server's to decide, from what it saw itself
// (nodeAt): a Booter is asked about the MAC DHCP saw or a URL names, and
// is told only the reports the server believes.
type Booter interface {
	// Lookup is what the node with this MAC (or Pi serial) gets now:
	// hostname, fixed address and option 224 (for a node with install:,
	// the install form or its boot form, by its install state). server
	// is the server's address on the node's network. ok is false when
	// nothing applies. It must not wait: DHCP answers with it.
	Lookup(mac net.HardwareAddr, serial string, server net.IP) (m inventory.Match, ok bool, err error)
	// NoteReport takes a stage (install, install done, install failed;
	// others may be ignored) the node with this MAC reported of its own
	// install. An error means an outcome was not recorded: the report is
	// answered 503 and the node sends it again.
	NoteReport(mac net.HardwareAddr, server net.IP, stage, detail string) error
	// Inventory is nodes.yaml in force, nil if none: its nodes stay on
	// the status board and have their own metrics, and full DHCP keeps
	// their fixed addresses out of its pool.
	Inventory() *inventory.Inventory
	// NoteSeen notes a node that asked to boot (DHCP), for the list of
	// nodes nodes.yaml does not list (`ramboot node discovered`). It must
	// not wait.
	NoteSeen(site.Seen)
	// NoteFacts keeps a node's hardware facts (checked, from the node's
	// own address); Facts is the latest of the node with this MAC.
	NoteFacts(f report.Facts, ip string)
	Facts(mac string) (site.FactsRecord, bool)
}

var _ Booter = (*site.Site)(nil)

// BooterFunc is a Booter from a lookup function, as http.HandlerFunc is a
// Handler: it records no reports and has no inventory.
type BooterFunc func(mac net.HardwareAddr, serial string, server net.IP) (inventory.Match, bool, error)

// Lookup calls f.
func (f BooterFunc) Lookup(mac net.HardwareAddr, serial string, server net.IP) (inventory.Match, bool, error) {
	return f(mac, serial, server)
}

// NoteReport records nothing.
func (BooterFunc) NoteReport(net.HardwareAddr, net.IP, string, string) error { return nil }

// Inventory is nil.
func (BooterFunc) Inventory() *inventory.Inventory { return nil }

// NoteSeen notes nothing.
func (BooterFunc) NoteSeen(site.Seen) {}

// NoteFacts keeps nothing.
func (BooterFunc) NoteFacts(report.Facts, string) {}

// Facts has none.
func (BooterFunc) Facts(string) (site.FactsRecord, bool) { return site.FactsRecord{}, false }

// booter is the Booter in force: Booter, else the server's own site.
func (s *Server) booter() Booter {
	if s.Booter != nil {
		return s.Booter
	}
	return s.ownSite()
}

// ownSite is the server's own site over Nodes and StateFile, made at the
// first call from the fields as they are then; nil when a Booter is
// given. Its loads pin the inventory's nodes on the status board. A
// lookup never waits here: the site is an atomic pointer once made.
func (s *Server) ownSite() *site.Site {
	if s.Booter != nil {
		return nil
	}
	if st := s.site.Load(); st != nil {
		return st
	}
	st := &site.Site{Nodes: s.Nodes, MaxUnlisted: s.StateMaxUnlisted, Log: s.log(),
		OnLoad: s.onInventory}
	if s.Nodes != "" || s.StateFile != "" {
		st.StateFile = s.stateFile()
	}
	s.site.CompareAndSwap(nil, st) // a concurrent first call's may have won
	return s.site.Load()
}

// openSite loads the server's own site as Run does: nodes.yaml, then the
// install state file (a corrupt one is an error). With a Booter given, it
// puts the Booter's inventory's nodes on the status board.
func (s *Server) openSite() error {
	st := s.ownSite()
	if st == nil {
		return s.Reload()
	}
	if err := st.Reload(); err != nil {
		return err
	}
	if err := st.OpenState(); err != nil {
		return fmt.Errorf("--state-file: %w", err)
	}
	return nil
}

// stateFile is the install state file Run uses.
func (s *Server) stateFile() string {
	if s.StateFile != "" {
		return s.StateFile
	}
	return site.DefaultStateFile(s.Root, s.LeaseFile)
}
