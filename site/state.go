package site

// The install state file and its rules; Site (site.go) applies them.
//
// The install lifecycle (issue 14): a node whose inventory entry has
// install: gets the install form of option 224 until it reports a
// successful install, then its boot: form (default local), until an
// operator asks for a reinstall (`ramboot node reinstall NAME`).
//
// What each node did is kept in the state file (--state-file, default
// state.json next to the lease file), one record per node by MAC:
//
//	{"nodes": {"dc:a6:32:01:36:c3": {"name": "pi-r1-03", "state": "installed",
//	  "image": "http://192.0.2.1:8080/img/debian.raw.xz", "sha256": "3f0c...",
//	  "since": "2026-11-30T17:02:11Z", "detail": "/dev/mmcblk0 sha256=3f0c..."}}}
//
// Rules:
//   - only the node's own reports change its record ("install",
//     "install done", "install failed", which the report endpoint accepts
//     only from the node's own address); DHCP never does;
//   - a node gets the install form unless its record says installed and no
//     reinstall is asked: a failed or interrupted install ("installing"
//     with no outcome, as after a power cut) is tried again from the start
//     at its next boot; only "install done" makes it installed;
//   - a report of an install from a node that is installed with no
//     reinstall asked is ignored (and logged): a node cannot wipe itself;
//   - a changed image or sha256 in nodes.yaml does not reinstall an
//     installed node: ask for it with `ramboot node reinstall NAME`;
//   - the file is written atomically (a temporary file, fsync, rename,
//     fsync of the directory) under an flock of FILE.lock, by the server
//     and by `ramboot node`; the server reads it again when it changed
//     (checked at each lookup of a node with install:), so a reinstall is
//     in force at the node's next DHCP request without a signal;
//   - a DHCP answer never waits for the file: lookups read the state in
//     force from memory (an atomic pointer to a State nobody changes once
//     it is in force). A report's write (flock, read, change, write,
//     fsync, rename) and a re-read of the file run under lifecycle.mu,
//     which a lookup only tries: while a write is under way, or waits for
//     `ramboot node`'s lock, lookups answer from the state in force, and
//     the written state comes into force once it is on disk;
//   - the file holds a record for each node nodes.yaml lists by MAC with
//     an install, and at most MaxUnlistedRecords for others (MACs only the
//     defaults' install: covers, which any host can make up): a new one
//     beyond that drops the oldest (one not installed first), logged;
//   - a corrupt file is an error naming it: the server does not start, and
//     a running server keeps the state it had and records nothing until
//     the file is fixed. A missing file is an empty state: deleting it
//     reinstalls every node with install:.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ramboot/ramboot/internal/atomicfile"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/internal/report"
)

// A node's recorded install state.
const (
	StateInstalling = "installing"
	StateInstalled  = "installed"
	StateFailed     = "failed"
)

// The report stages the lifecycle acts on.
const (
	StageInstall       = report.Install
	StageInstallDone   = report.InstallDone
	StageInstallFailed = report.InstallFailed
)

// StateLockTimeout bounds the wait for another process's lock of the
// state file.
const StateLockTimeout = 10 * time.Second

// NodeState is one node's record in the state file.
type NodeState struct {
	Name               string    `json:"name,omitempty"` // the inventory hostname, when known
	State              string    `json:"state"`          // installing, installed, failed; "" with only a reinstall asked
	Image              string    `json:"image,omitempty"`
	SHA256             string    `json:"sha256,omitempty"`
	Since              time.Time `json:"since"`
	Detail             string    `json:"detail,omitempty"`
	ReinstallRequested bool      `json:"reinstall_requested,omitempty"`
	// Generation is the install generation: the one the install form
	// asks for (gen=), then the one the node's disk carries once it
	// reported it. 0 (a record from before generations) counts as 1.
	Generation int `json:"generation,omitempty"`
}

// MaxGeneration bounds a record's generation (gen= takes nine digits).
const MaxGeneration = 999999999

// NewGeneration draws the install generation of a reinstall: a random
// number from 2 to MaxGeneration other than prev. A node's disk carries
// its install's generation, and the init leaves a disk alone only at
// exactly the generation asked: a drawn one cannot be written on the disk
// ahead of time by whoever runs the installed OS, as prev+1 could.
func NewGeneration(prev int) (int, error) {
	for {
		n, err := rand.Int(rand.Reader, big.NewInt(MaxGeneration-1))
		if err != nil {
			return 0, fmt.Errorf("drawing an install generation: %w", err)
		}
		if g := int(n.Int64()) + 2; g != prev {
			return g, nil
		}
	}
}

// Gen is the install generation in force for a node with this record
// (nil: none): 1 until a reinstall starts a new one.
func (n *NodeState) Gen() int {
	if n == nil || n.Generation < 1 {
		return 1
	}
	return n.Generation
}

// WantsInstall reports whether a node with this record (nil: none) gets
// the install form.
func (n *NodeState) WantsInstall() bool {
	return n == nil || n.State != StateInstalled || n.ReinstallRequested
}

// State is the state file: records by MAC (lower case, colons).
type State struct {
	Nodes map[string]*NodeState `json:"nodes"`
}

// DefaultStateFile is where serve keeps the state with no --state-file:
// next to the lease file (leaseFile, or its default next to root).
func DefaultStateFile(root, leaseFile string) string {
	if leaseFile != "" {
		return filepath.Join(filepath.Dir(leaseFile), "state.json")
	}
	return filepath.Join(filepath.Dir(filepath.Clean(root)), "state.json")
}

// ReadState reads a state file; a missing one is an empty state.
func ReadState(path string) (*State, error) {
	st, _, err := readState(path)
	return st, err
}

// fileID tells whether a file was replaced or changed.
type fileID struct {
	dev, ino uint64
	mtime    int64
	size     int64
}

func statID(path string) (fileID, error) {
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(s.Dev), uint64(s.Ino), s.Mtim.Nano(), s.Size}, nil
}

func readState(path string) (*State, fileID, error) {
	st := &State{Nodes: map[string]*NodeState{}}
	id, err := statID(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, fileID{}, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, fileID{}, nil
	}
	if err != nil {
		return nil, id, fmt.Errorf("state file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(st); err != nil {
		return nil, id, fmt.Errorf("state file %s is corrupt (%v): fix it, or move it away to start over (every node with install: then installs again)", path, err)
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*NodeState{}
	}
	for k, n := range st.Nodes {
		mac, err := net.ParseMAC(k)
		if err != nil || mac.String() != k || n == nil {
			return nil, id, fmt.Errorf("state file %s is corrupt: key %q is not a MAC like dc:a6:32:01:36:c2 with a record: fix it or remove that record", path, k)
		}
		switch n.State {
		case StateInstalling, StateInstalled, StateFailed:
		case "":
			if !n.ReinstallRequested {
				return nil, id, fmt.Errorf("state file %s is corrupt: node %s has no state: fix it or remove that record", path, k)
			}
		default:
			return nil, id, fmt.Errorf("state file %s is corrupt: node %s: state %q is none of installing, installed, failed", path, k, n.State)
		}
		if n.Generation < 0 || n.Generation > MaxGeneration {
			return nil, id, fmt.Errorf("state file %s is corrupt: node %s: generation %d is not from 1 to %d: fix it or remove that record", path, k, n.Generation, MaxGeneration)
		}
	}
	return st, id, nil
}

// UpdateState changes the state file under its lock: it reads the file,
// calls fn, and writes the result atomically unless fn fails.
func UpdateState(path string, fn func(*State) error) error {
	_, _, err := updateState(path, fn)
	return err
}

func updateState(path string, fn func(*State) error) (*State, fileID, error) {
	unlock, err := lockState(path)
	if err != nil {
		return nil, fileID{}, err
	}
	defer unlock()
	st, id, err := readState(path)
	if err != nil {
		return nil, id, err
	}
	if err := fn(st); err != nil {
		return st, id, err
	}
	if err := writeState(path, st); err != nil {
		return nil, id, err
	}
	id, err = statID(path)
	return st, id, err
}

// lockState takes FILE.lock's flock, waiting at most StateLockTimeout.
func lockState(path string) (func(), error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, os.ErrPermission) {
		// Made by another user (root's `ramboot node`, or the service's):
		// flock needs no write access.
		f, err = os.Open(path + ".lock")
	}
	if err != nil {
		return nil, fmt.Errorf("state file lock: %w (is the directory writable?)", err)
	}
	keepOwner(f, filepath.Dir(path))
	deadline := time.Now().Add(StateLockTimeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("state file lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("state file %s: still locked by another process after %v (a ramboot serve or ramboot node stuck?)", path, StateLockTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeState writes st to path atomically and durably (atomicfile), the
// temporary file owned as the directory is (keepOwner).
func writeState(path string, st *State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	keep := func(f *os.File) error { keepOwner(f, dir); return nil }
	if err := atomicfile.Write(path, data, atomicfile.Options{Prepare: keep}); err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	return nil
}

// keepOwner gives a file root made the owner of its directory (the
// service's user, under systemd's DynamicUser=), so that `ramboot node` run
// as root leaves a state the server can still write. Others are left alone.
func keepOwner(f *os.File, dir string) {
	if os.Geteuid() != 0 {
		return
	}
	var st unix.Stat_t
	if unix.Stat(dir, &st) == nil && st.Uid != 0 {
		f.Chown(int(st.Uid), int(st.Gid))
	}
}

// Sorted returns the records' MACs ordered by name, then MAC.
func (st *State) Sorted() []string {
	keys := make([]string, 0, len(st.Nodes))
	for k := range st.Nodes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := st.Nodes[keys[i]], st.Nodes[keys[j]]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return keys[i] < keys[j]
	})
	return keys
}

// MaxUnlistedRecords bounds the state's records for MACs that nodes.yaml
// does not list (nodes that only the defaults' install: covers): beyond
// it, a new record drops the oldest.
const MaxUnlistedRecords = 256
