// Package atomicfile replaces a file so that a reader sees the old one or
// the new one, never a part, and a crash leaves one of them on disk: the
// data goes to a temporary file beside the target, is synced, renamed over
// the target, and the directory is synced. The built tree, the server's
// lease and state files, the init's writes to an installed disk and the
// download cache all write through it.
//
//	err := atomicfile.Write("out/rpi4/manifest.json", data, atomicfile.Options{})
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Options are how a file is written; the zero value is mode 0644, synced.
type Options struct {
	// Mode is the file's permission bits; 0 is 0644. It is set exactly
	// where the file system keeps modes (a FAT partition does not: there
	// the mount's own mode stands).
	Mode os.FileMode
	// NoSync leaves out both syncs: for caches that can be fetched again.
	NoSync bool
	// Prepare, if set, runs on the temporary file before the data is
	// written (a chown, say); its error fails the write.
	Prepare func(*os.File) error
	// Sync syncs the file's data; nil is (*os.File).Sync. Tests fail it.
	Sync func(*os.File) error
}

// Write replaces path with data. The temporary file is removed on any
// failure; the error names the step that failed, and the caller names
// the file.
func Write(path string, data []byte, o Options) error {
	mode := o.Mode
	if mode == 0 {
		mode = 0o644
	}
	dir := filepath.Dir(path)
	f, tmp, err := create(dir, filepath.Base(path), mode)
	if err != nil {
		return err
	}
	err = fill(f, data, mode, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if o.NoSync {
		return nil
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("sync of its directory: %w", err)
	}
	return nil
}

// create makes a new temporary file in dir, named after base and hidden.
func create(dir, base string, mode os.FileMode) (*os.File, string, error) {
	for range 16 {
		var r [6]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, "", err
		}
		tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(r[:]))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, tmp, err
	}
	return nil, "", fmt.Errorf("no free temporary name beside %s in %s", base, dir)
}

func fill(f *os.File, data []byte, mode os.FileMode, o Options) error {
	if o.Prepare != nil {
		if err := o.Prepare(f); err != nil {
			return err
		}
	}
	// The umask may have taken bits from the mode OpenFile was given; a
	// file system without modes refuses the chmod, and keeps its own.
	if st, err := f.Stat(); err == nil && st.Mode().Perm() != mode.Perm() {
		_ = f.Chmod(mode)
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if o.NoSync {
		return nil
	}
	sync := o.Sync
	if sync == nil {
		sync = (*os.File).Sync
	}
	return sync(f)
}

// SyncDir syncs a directory, so that a rename in it is on disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
