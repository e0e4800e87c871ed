package site

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/ramboot/ramboot/internal/atomicfile"
)

// flusher writes a JSON file the server keeps for `ramboot node` to read
// (discovered.json, facts.json): at most once per flushEvery after a
// change, never waiting on the caller's path; a failed write is logged
// once. Losing the last seconds of such a file costs nothing, so it is
// written without fsync.
type flusher struct {
	path string                        // "" keeps nothing on disk
	snap func() any                    // what to write, taken at write time
	log  func(msg string, args ...any) // a failed write, once

	mu      sync.Mutex
	pending bool
	warned  bool
}

// flushEvery is the least time between two writes of a file.
const flushEvery = 2 * time.Second

// schedule writes the file flushEvery from now, unless a write is
// scheduled already.
func (f *flusher) schedule() {
	if f.path == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending {
		return
	}
	f.pending = true
	time.AfterFunc(flushEvery, f.flush)
}

func (f *flusher) flush() {
	f.mu.Lock()
	f.pending = false
	f.mu.Unlock()
	data, err := json.MarshalIndent(f.snap(), "", "  ")
	if err == nil {
		err = atomicfile.Write(f.path, append(data, '\n'), atomicfile.Options{NoSync: true})
	}
	f.mu.Lock()
	warn := err != nil && !f.warned
	f.warned = f.warned || err != nil
	f.mu.Unlock()
	if warn {
		f.log("not written (logged once; `ramboot node` will not see the latest)", "file", f.path, "err", err)
	}
}
