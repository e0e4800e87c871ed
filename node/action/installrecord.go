//go:build linux

package action

// The install record: what an install leaves on the disk it wrote, as the
// last write of the install (after the image is verified, written, grown
// and edited), so that a disk holds one only when its install finished:
//
//	/var/lib/ramboot/install.json   on the installed Linux root (ext4), else
//	/ramboot-install.json           on its boot partition (FAT)
//
//	{"gen": 2, "image": "http://192.0.2.1:8080/images/debian.raw.xz",
//	 "sha256": "3f0c...", "disk": "/dev/vda", "time": "2026-12-07T13:40:00Z"}
//
// Before it writes anything, an install reads the disk's record with its
// partitions mounted read-only (ext4 with noload: no journal replay
// changes a byte). A record of the same image (the same digest; with
// sha256=none, the same URL) at the generation the install form asks for
// (gen=) or a later one means the disk is installed already: it is not
// written, the node reports "install done" with "already installed" and
// the generation, and boots it. Only a new generation, which only an
// operator's `ramboot node reinstall` starts, re-flashes a disk. Anything
// that cannot be read is no record: the install goes on as before.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
)

// installRecord is the install record's content.
type installRecord struct {
	Gen    int       `json:"gen"`
	Image  string    `json:"image"`  // the image URL, without credentials or fragment
	SHA256 string    `json:"sha256"` // 64 lower-case hex digits, or "none"
	Disk   string    `json:"disk"`   // the disk it was written to, as the init named it
	Time   time.Time `json:"time"`   // the node's clock when it was written
}

// Where the record goes: on the installed Linux root, else on the boot
// partition.
const (
	recordOnRoot = "var/lib/ramboot/install.json"
	recordOnBoot = "ramboot-install.json"
	// maxRecord bounds the bytes read from a disk for a record.
	maxRecord = 4096
)

// newRecord is the record of spec's install on disk.
func newRecord(spec bootspec.InstallSpec, disk string, now time.Time) installRecord {
	r := installRecord{Gen: spec.Gen, Image: recordImage(spec), SHA256: spec.SHA256, Disk: disk, Time: now.UTC().Truncate(time.Second)}
	if spec.NoDigest {
		r.SHA256 = "none"
	}
	return r
}

// recordImage is the image URL as a record keeps it: without credentials
// or the fragment.
func recordImage(spec bootspec.InstallSpec) string {
	u := *spec.URL
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// covers tells whether a disk with this record holds spec's install
// already: the same image at exactly spec's generation. why says what
// differs when it does not. The record is on the disk, which whoever ran
// the installed OS could write: a generation is a number the server draws
// at random for each reinstall (ramboot node reinstall), so a tenant
// cannot write one ahead that keeps its disk through the next reinstall.
func (r *installRecord) covers(spec bootspec.InstallSpec) (ok bool, why string) {
	if r == nil {
		return false, "no install record"
	}
	if r.Gen != spec.Gen {
		return false, fmt.Sprintf("it carries generation %d, the install asks for %d", r.Gen, spec.Gen)
	}
	if spec.NoDigest {
		if r.SHA256 != "none" || r.Image != recordImage(spec) {
			return false, fmt.Sprintf("it holds %s (sha256=%s), the install is %s unchecked", r.Image, r.SHA256, recordImage(spec))
		}
		return true, ""
	}
	if r.SHA256 != spec.SHA256 {
		return false, fmt.Sprintf("it holds sha256=%s, the install is sha256=%s", r.SHA256, spec.SHA256)
	}
	return true, ""
}

// parseRecord reads a record's bytes; anything odd is an error (and so
// no record).
func parseRecord(b []byte) (*installRecord, error) {
	if len(b) > maxRecord {
		return nil, fmt.Errorf("more than %d bytes", maxRecord)
	}
	var r installRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	if r.Gen < 0 || r.Gen > bootspec.MaxGen {
		return nil, fmt.Errorf("generation %d out of range", r.Gen)
	}
	if r.SHA256 != "none" && (len(r.SHA256) != 64 || strings.Trim(r.SHA256, "0123456789abcdef") != "") {
		return nil, fmt.Errorf("sha256 %q is not 64 lower-case hex digits or none", r.SHA256)
	}
	if r.Image == "" {
		return nil, errors.New("no image")
	}
	return &r, nil
}

// readRecordIn reads the record in a mounted partition: the root's, else
// the boot partition's. Names stay inside dir; only a regular file of at
// most maxRecord bytes is read.
func readRecordIn(dir string) (*installRecord, string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, "", err
	}
	defer root.Close()
	var errs []error
	for _, name := range []string{recordOnRoot, recordOnBoot} {
		fi, err := root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", name)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		r, err := parseRecord(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		return r, name, nil
	}
	return nil, "", errors.Join(errs...)
}

// mountRO mounts dev on dir read-only, as a record is read: ext4 with
// noload (the journal is not replayed, so nothing is written), else FAT.
// It returns the file system type.
func mountRO(dev, dir string) (string, error) {
	const flags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	var errs []error
	for _, m := range []struct{ fstype, data string }{{"ext4", "noload"}, {"vfat", ""}} {
		err := unix.Mount(dev, dir, m.fstype, flags, m.data)
		if err == nil {
			return m.fstype, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", m.fstype, err))
	}
	return "", errors.Join(errs...)
}

// diskPartitionsNow lists disk's partitions in sysfs, in order, without
// waiting: a disk's partitions are there once the disk is.
func diskPartitionsNow(disk string) []string {
	name := filepath.Base(disk)
	num := map[string]int{}
	var out []string
	for _, p := range sysPartitions(name) {
		b, _ := os.ReadFile(p)
		dev := "/dev/" + filepath.Base(filepath.Dir(p))
		num[dev], _ = strconv.Atoi(strings.TrimSpace(string(b)))
		out = append(out, dev)
	}
	sort.Slice(out, func(i, j int) bool { return num[out[i]] < num[out[j]] })
	return out
}

// foundRecord is a record read from a disk and where it was.
type foundRecord struct {
	*installRecord
	part, path, fstype string
}

func (f *foundRecord) String() string {
	return fmt.Sprintf("%s:/%s (generation %d, sha256=%s, %s)", f.part, f.path, f.Gen, f.SHA256, f.Time.Format(time.RFC3339))
}

// diskRecord reads disk's install record, its partitions mounted
// read-only one at a time. nil with no error: no partition holds one.
func diskRecord(disk string) (*foundRecord, error) {
	dir, err := os.MkdirTemp("", "ramboot-record-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	var errs []error
	for _, part := range diskPartitionsNow(disk) {
		fstype, err := mountRO(part, dir)
		if err != nil {
			continue // no ext4 or FAT file system: swap, an empty partition
		}
		r, path, err := readRecordIn(dir)
		if uerr := unix.Unmount(dir, 0); uerr != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", part, err))
		}
		if r != nil {
			return &foundRecord{installRecord: r, part: part, path: path, fstype: fstype}, nil
		}
	}
	return nil, errors.Join(errs...)
}

// writeRecord writes rec in the partition mounted on dir (at rel), synced
// with its directory.
func writeRecord(dir, rel string, rec installRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return writeSynced(p, append(b, '\n'), 0o644)
}
