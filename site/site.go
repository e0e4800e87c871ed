// Package site is the site model: nodes.yaml (site/inventory), the nodes'
// install state file (state.go) and the decision the two make together,
// what a node gets now. `ramboot serve` asks a Site through a small
// interface (server.Booter); `ramboot node` edits the state file through
// ReadState and UpdateState; the exporters for other servers sit beside it
// (site/dhcpconf, site/pxelinux).
//
//	s := &site.Site{Nodes: "nodes.yaml", StateFile: "state.json", Log: log}
//	if err := s.Reload(); err != nil { ... }    // nodes.yaml
//	if err := s.OpenState(); err != nil { ... } // the state file
//	m, ok, err := s.Lookup(mac, serial, serverIP)
//	// m.Option224: the install form until the node reports it installed,
//	// then its boot: form
//	err = s.NoteReport(mac, serverIP, site.StageInstallDone, detail)
//
// What the server saw of a node (who it is, at which address) is not the
// site's: the server decides whose report it is, and the site only takes
// the install outcomes it is given, for the generation in force.
package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ramboot/ramboot/site/inventory"
)

// Site is one site's nodes.yaml and install state. Set the fields, then
// Reload and OpenState; the methods are safe for concurrent use.
type Site struct {
	// Nodes is nodes.yaml; "" is none: every node gets the defaults (of
	// which there are none).
	Nodes string
	// StateFile keeps the nodes' install state; "" keeps none (a node
	// with install: then gets the install form at every boot).
	StateFile string
	// MaxUnlisted bounds the records of MACs nodes.yaml does not list;
	// 0 is MaxUnlistedRecords.
	MaxUnlisted int
	// MaxDiscovered bounds the nodes seen that nodes.yaml does not list
	// (NoteSeen); 0 is MaxDiscovered.
	MaxDiscovered int
	// Log gets one line per load, install state change and refused
	// report; nil is silent.
	Log *slog.Logger
	// OnLoad, if set, is called with each inventory that comes into force
	// (Reload), before Reload returns.
	OnLoad func(*inventory.Inventory)

	mu  sync.RWMutex
	inv *inventory.Inventory
	lc  atomic.Pointer[lifecycle] // nil until OpenState

	discOnce  sync.Once
	disc      *discovered // NoteSeen's list (discovered.go)
	factsOnce sync.Once
	facts     *factsStore // NoteFacts's (facts.go)
}

func (s *Site) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Inventory returns the inventory in force; nil before the first Reload
// or with no Nodes.
func (s *Site) Inventory() *inventory.Inventory {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.inv
}

// Reload reads nodes.yaml again; a bad file is reported and the old
// inventory stays in force. With no Nodes it does nothing.
func (s *Site) Reload() error {
	if s.Nodes == "" {
		return nil
	}
	inv, err := inventory.Load(s.Nodes)
	if err != nil {
		s.log().Error("inventory rejected; the previous one stays in force", "file", s.Nodes, "err", err)
		return err
	}
	s.mu.Lock()
	s.inv = inv
	s.mu.Unlock()
	if s.OnLoad != nil {
		s.OnLoad(inv)
	}
	s.log().Info("inventory loaded", "file", s.Nodes, "nodes", len(inv.Nodes))
	return nil
}

// Watch reloads nodes.yaml whenever its modification time changes
// (checked every two seconds) until ctx ends. It returns nil.
func (s *Site) Watch(ctx context.Context) error {
	if s.Nodes == "" {
		return nil
	}
	var last time.Time
	if st, err := os.Stat(s.Nodes); err == nil {
		last = st.ModTime()
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			st, err := os.Stat(s.Nodes)
			if err == nil && !st.ModTime().Equal(last) {
				last = st.ModTime()
				s.Reload()
			}
		}
	}
}

// lifecycle is the site's view of the state file.
type lifecycle struct {
	path string
	// snap is the state in force, read by lookups without a lock. Its
	// State is never changed once stored: a change stores a new one.
	snap atomic.Pointer[lcSnap]
	// mu orders the changes of snap (a report's write, a re-read of the
	// file another process changed). A lookup only tries it: it never
	// waits for a write.
	mu          sync.Mutex
	bad         fileID // under mu: a file found corrupt, not read again until it changes
	maxUnlisted int    // default MaxUnlistedRecords
	log         *slog.Logger
}

// lcSnap is a state in force and the file it was read from.
type lcSnap struct {
	st *State
	id fileID
}

func (lc *lifecycle) set(st *State, id fileID) { lc.snap.Store(&lcSnap{st, id}) }

// OpenState reads the state file; a corrupt one is an error naming it.
// From then on Lookup applies the state and NoteReport records install
// outcomes. With no StateFile it does nothing.
func (s *Site) OpenState() error {
	if s.StateFile == "" {
		return nil
	}
	st, id, err := readState(s.StateFile)
	if err != nil {
		return err
	}
	lc := &lifecycle{path: s.StateFile, maxUnlisted: s.MaxUnlisted, log: s.log()}
	if lc.maxUnlisted <= 0 {
		lc.maxUnlisted = MaxUnlistedRecords
	}
	lc.set(st, id)
	s.lc.Store(lc)
	return nil
}

// StatePath is the state file in force ("" before OpenState).
func (s *Site) StatePath() string {
	if lc := s.lc.Load(); lc != nil {
		return lc.path
	}
	return ""
}

// record returns the state in force for mac, reading the file again if it
// changed. It never waits: while a write or another re-read is under way
// it answers from the state in force. A file that cannot be read leaves
// the last state in force.
func (lc *lifecycle) record(mac string) *NodeState {
	if lc.mu.TryLock() {
		lc.refresh()
		lc.mu.Unlock()
	}
	if n := lc.snap.Load().st.Nodes[mac]; n != nil {
		c := *n
		return &c
	}
	return nil
}

// refresh reads the file again if it changed since the state in force was
// read; lc.mu is held.
func (lc *lifecycle) refresh() {
	id, err := statID(lc.path)
	if errors.Is(err, os.ErrNotExist) {
		id, err = fileID{}, nil
	}
	// A missing file's id is the zero fileID, and so is lc.bad when no
	// file was found corrupt: only a real bad id stops a re-read.
	if err != nil || id == lc.snap.Load().id || (lc.bad != fileID{} && id == lc.bad) {
		return
	}
	st, nid, rerr := readState(lc.path)
	if rerr != nil {
		lc.bad = nid
		lc.log.Error("state file unreadable; the last state read stays in force and nothing is recorded until it is fixed", "err", rerr)
		return
	}
	lc.set(st, nid)
	lc.bad = fileID{}
	lc.log.Info("state file read again", "file", lc.path, "nodes", len(st.Nodes))
}

// makeRoom drops records of MACs that inv does not list until fewer than
// max are left, for a new one: those not installed first, then the
// oldest. It returns the MACs dropped.
func makeRoom(st *State, inv *inventory.Inventory, max int) []string {
	var others []string
	for k := range st.Nodes {
		if mac, err := net.ParseMAC(k); err == nil && !inv.Listed(mac) {
			others = append(others, k)
		}
	}
	if len(others) < max {
		return nil
	}
	sort.Slice(others, func(i, j int) bool {
		a, b := st.Nodes[others[i]], st.Nodes[others[j]]
		if ai, bi := a.State == StateInstalled, b.State == StateInstalled; ai != bi {
			return !ai
		}
		if !a.Since.Equal(b.Since) {
			return a.Since.Before(b.Since)
		}
		return others[i] < others[j]
	})
	drop := others[:len(others)-max+1]
	for _, k := range drop {
		delete(st.Nodes, k)
	}
	return drop
}

// Lookup is what a node gets now: the inventory's answer for it (by MAC,
// then Pi serial, then the defaults; server is the server's address on
// the node's network, for {{.Server}}) with its install state applied: a
// node with install: gets the install form (with the generation in
// force) until it is recorded installed and no reinstall is asked, then
// its boot form. ok is false when nothing applies. It never waits for the
// state file.
func (s *Site) Lookup(mac net.HardwareAddr, serial string, server net.IP) (inventory.Match, bool, error) {
	m, ok, err := s.Inventory().Lookup(mac, serial, server)
	if err != nil || !ok || m.Install == "" {
		return m, ok, err
	}
	var rec *NodeState
	if lc := s.lc.Load(); lc != nil && mac != nil {
		rec = lc.record(mac.String())
	}
	if rec.WantsInstall() {
		m.Option224 = inventory.WithGeneration(m.Install, rec.Gen())
	}
	return m, ok, nil
}

// errNoChange ends an UpdateState that has nothing to write.
var errNoChange = errors.New("no change")

// NoteReport records an install's progress or outcome (stage install,
// install done or install failed; others are no business of the site's)
// from the report of the node with this MAC, whose report it is by the
// caller's own evidence; server is as for Lookup. A report the state does
// not take by its rules (a node with no install:, an installed node with
// no reinstall asked, an outcome for another generation than the one in
// force) is logged and changes nothing; an error means the state file
// could not take an outcome it should have (the caller answers so that
// the node tries again). With no state file open it does nothing.
func (s *Site) NoteReport(mac net.HardwareAddr, server net.IP, stage, detail string) error {
	if stage != StageInstall && stage != StageInstallDone && stage != StageInstallFailed {
		return nil
	}
	lc := s.lc.Load()
	if lc == nil || mac == nil {
		return nil
	}
	key := mac.String()
	inv := s.Inventory()
	m, ok, err := inv.Lookup(mac, "", server)
	if err != nil || !ok || m.Install == "" {
		s.log().Warn("install report from a node with no install: in nodes.yaml; not recorded", "mac", key, "stage", stage, "detail", detail)
		return nil
	}
	if stage == StageInstall {
		// Progress comes every few seconds: the file is written once,
		// when the install starts.
		if rec := lc.record(key); rec != nil && rec.State == StateInstalling {
			return nil
		}
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	var ignored string
	var dropped []string
	st, id, err := updateState(lc.path, func(st *State) error {
		rec := st.Nodes[key]
		if !rec.WantsInstall() {
			ignored = "the node is installed and no reinstall is asked (ramboot node reinstall NAME asks)"
			return errNoChange
		}
		// An outcome is for the generation the node was handed: one for
		// another (an install that ends after the operator asked for a
		// reinstall) changes nothing, so it cannot cancel the reinstall.
		// (gen=0: a form written by hand, as dhcp-config prints it, which
		// names no generation.)
		if g, ok := reportedGen(detail); ok && g != 0 && stage != StageInstall && g != rec.Gen() {
			ignored = fmt.Sprintf("the report is for install generation %d; generation %d is in force", g, rec.Gen())
			return errNoChange
		}
		if rec == nil {
			if !inv.Listed(mac) {
				dropped = makeRoom(st, inv, max(lc.maxUnlisted, 1))
			}
			rec = &NodeState{}
			st.Nodes[key] = rec
		}
		rec.Name = m.Hostname
		rec.Since = time.Now().UTC().Truncate(time.Second)
		rec.Detail = detail
		rec.Image = m.InstallImage
		rec.Generation = rec.Gen()
		switch stage {
		case StageInstall:
			rec.State = StateInstalling
			rec.SHA256 = m.InstallSHA256
		case StageInstallDone:
			rec.State = StateInstalled
			rec.SHA256 = reportedSHA256(detail, m.InstallSHA256)
			rec.ReinstallRequested = false
		case StageInstallFailed:
			rec.State = StateFailed
			rec.SHA256 = m.InstallSHA256
		}
		return nil
	})
	switch {
	case errors.Is(err, errNoChange):
		lc.set(st, id)
		s.log().Warn("install report ignored", "mac", key, "stage", stage, "why", ignored)
	case err != nil:
		s.log().Error("install state not recorded", "mac", key, "stage", stage, "err", err)
		return fmt.Errorf("install state not recorded: %w", err)
	default:
		lc.set(st, id)
		lc.bad = fileID{}
		for _, k := range dropped {
			s.log().Warn("install state record dropped: more records than MaxUnlistedRecords for MACs nodes.yaml does not list (list the nodes by mac: to keep theirs)", "mac", k, "max", max(lc.maxUnlisted, 1), "for", key)
		}
		rec := st.Nodes[key]
		s.log().Info("install state", "mac", key, "name", rec.Name, "state", rec.State, "image", rec.Image, "sha256", rec.SHA256)
	}
	return nil
}

// reportedGen is the install generation in an "install done" detail
// ("DISK sha256=HEX gen=N ..."); ok is false when it names none (an init
// from before generations).
func reportedGen(detail string) (gen int, ok bool) {
	for _, f := range strings.Fields(detail) {
		v, found := strings.CutPrefix(f, "gen=")
		if !found {
			continue
		}
		v = strings.TrimRight(v, ".,;:)")
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxGeneration {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// reportedSHA256 is the digest in an "install done" detail ("DISK
// sha256=HEX"), else def.
func reportedSHA256(detail, def string) string {
	for _, f := range strings.Fields(detail) {
		if h, ok := strings.CutPrefix(f, "sha256="); ok && len(h) == 64 && strings.Trim(strings.ToLower(h), "0123456789abcdef") == "" {
			return strings.ToLower(h)
		}
	}
	return def
}
