// Package images keeps a tree's root images (`ramboot rootfs`) as
// generations and channels, so that a new image never overwrites the one
// the nodes run and a bad one is undone at each node's next boot:
//
//	images/debian@3f0c8a2b6f3c.squashfs         a generation: its content's short digest
//	images/debian@3f0c8a2b6f3c.squashfs.sha256  its digest, as the init checks it
//	images/debian.squashfs -> debian@3f0c8a2b6f3c.squashfs             the channel "" (the default)
//	images/debian.squashfs.sha256 -> debian@3f0c8a2b6f3c.squashfs.sha256
//	images/debian-canary.squashfs -> debian@9a7b4c2d0e8f.squashfs     the channel "canary"
//	images/debian.history                        each channel's promotions, one JSON line each
//
// Option 224 names a channel (ramroot http://SERVER:8080/images/debian.squashfs)
// or pins a generation (images/debian@3f0c8a2b6f3c.squashfs). A promotion
// turns a channel's two symbolic links, the digest's first: a node that
// fetches between the two sees the old image with the new digest, which
// its check refuses (it retries), never a wrong image accepted. The same
// image built twice is the same generation (the digest names it).
package images

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ramboot/ramboot/internal/atomicfile"
)

// Ext is a root image's file name extension.
const Ext = ".squashfs"

// genLen is the hex digits of the digest that name a generation.
const genLen = 12

// Generation is one built root image.
type Generation struct {
	Name     string    // the image's name: "debian"
	ID       string    // its short digest: "3f0c8a2b6f3c"
	SHA256   string    // the whole digest
	Size     int64     // bytes
	Built    time.Time // when it was added (the file's time)
	Channels []string  // the channels that point at it ("" is the default)
}

// File is the generation's image file name, relative to images/.
func (g Generation) File() string { return GenFile(g.Name, g.ID) }

// GenFile is generation id of name's image file name.
func GenFile(name, id string) string { return name + "@" + id + Ext }

// ChannelFile is channel's image file name ("" is the default channel).
func ChannelFile(name, channel string) string {
	if channel == "" {
		return name + Ext
	}
	return name + "-" + channel + Ext
}

// Store is a tree's images/ directory.
type Store struct {
	Dir string // OUT/images
	// Now is the clock for the history; nil is time.Now.
	Now func() time.Time
}

func (s Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// ValidChannel reports whether c can name a channel: "" or letters,
// digits and "_" (a "-" would make debian-a-b ambiguous), at most 32.
func ValidChannel(c string) bool {
	if len(c) > 32 {
		return false
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// Add makes the built image at tmp (in Dir) generation of name, with its
// digest sum: tmp is renamed to its generation's file (or removed, if
// that generation exists already: the same bytes), and the digest written
// beside it, both durable. It returns the generation; no channel changes.
// An image at the default channel's name that is a regular file (from a
// ramboot before generations) becomes a generation of its own first, so
// that nothing built is lost.
func (s Store) Add(name, tmp, sum string) (Generation, error) {
	if err := s.adopt(name); err != nil {
		return Generation{}, err
	}
	id := sum[:genLen]
	dst := filepath.Join(s.Dir, GenFile(name, id))
	line := fmt.Sprintf("%s  %s\n", sum, filepath.Base(dst))
	if err := atomicfile.Write(dst+".sha256", []byte(line), atomicfile.Options{}); err != nil {
		return Generation{}, fmt.Errorf("generation %s: %w", filepath.Base(dst), err)
	}
	if _, err := os.Stat(dst); err == nil {
		os.Remove(tmp) // the same bytes, built again
	} else {
		if err := syncFile(tmp); err != nil {
			return Generation{}, err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return Generation{}, fmt.Errorf("generation %s: %w", filepath.Base(dst), err)
		}
		if err := atomicfile.SyncDir(s.Dir); err != nil {
			return Generation{}, err
		}
	}
	return s.Get(name, id)
}

// adopt turns a regular file at name's default channel into a generation.
func (s Store) adopt(name string) error {
	p := filepath.Join(s.Dir, ChannelFile(name, ""))
	st, err := os.Lstat(p)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	sum, err := hashFile(p)
	if err != nil {
		return err
	}
	dst := filepath.Join(s.Dir, GenFile(name, sum[:genLen]))
	if err := atomicfile.Write(dst+".sha256", []byte(fmt.Sprintf("%s  %s\n", sum, filepath.Base(dst))), atomicfile.Options{}); err != nil {
		return err
	}
	if err := os.Rename(p, dst); err != nil {
		return err
	}
	os.Remove(p + ".sha256")
	if err := s.point(name, "", sum[:genLen]); err != nil {
		return err
	}
	return s.logPromotion(name, "", sum[:genLen], "adopted (built before generations)")
}

// Promote points channel at generation id (or a unique prefix of it, at
// least 6 hex digits) and records it in the history.
func (s Store) Promote(name, channel, id string) (Generation, error) {
	if !ValidChannel(channel) {
		return Generation{}, fmt.Errorf("channel %q: want lower-case letters, digits and _, at most 32", channel)
	}
	g, err := s.Get(name, id)
	if err != nil {
		return Generation{}, err
	}
	if err := s.point(name, channel, g.ID); err != nil {
		return Generation{}, err
	}
	return g, s.logPromotion(name, channel, g.ID, "promoted")
}

// Rollback points channel back at the generation it had before its
// current one, by the history. It never rebuilds anything.
func (s Store) Rollback(name, channel string) (from, to Generation, err error) {
	cur, err := s.Current(name, channel)
	if err != nil {
		return from, to, err
	}
	hist, err := s.History(name)
	if err != nil {
		return from, to, err
	}
	prev := ""
	// The latest entry of this channel that is not the current generation
	// and still exists.
	for i := len(hist) - 1; i >= 0; i-- {
		h := hist[i]
		if h.Channel != channel || h.Gen == cur.ID {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.Dir, GenFile(name, h.Gen))); err == nil {
			prev = h.Gen
			break
		}
	}
	if prev == "" {
		return cur, to, fmt.Errorf("channel %s of %s: no earlier generation in %s to go back to (ramboot image list shows them; promote one)", chanName(channel), name, name+".history")
	}
	if err := s.point(name, channel, prev); err != nil {
		return cur, to, err
	}
	to, err = s.Get(name, prev)
	if err != nil {
		return cur, to, err
	}
	return cur, to, s.logPromotion(name, channel, prev, "rollback from "+cur.ID)
}

// Current is the generation channel points at.
func (s Store) Current(name, channel string) (Generation, error) {
	target, err := os.Readlink(filepath.Join(s.Dir, ChannelFile(name, channel)))
	if err != nil {
		return Generation{}, fmt.Errorf("channel %s of %s: %w (build one with ramboot rootfs)", chanName(channel), name, err)
	}
	id, ok := strings.CutPrefix(strings.TrimSuffix(target, Ext), name+"@")
	if !ok {
		return Generation{}, fmt.Errorf("channel %s of %s points at %s, not a generation", chanName(channel), name, target)
	}
	return s.Get(name, id)
}

// Get is generation id of name (a unique prefix of at least 6 digits).
func (s Store) Get(name, id string) (Generation, error) {
	gens, err := s.List(name)
	if err != nil {
		return Generation{}, err
	}
	var found []Generation
	for _, g := range gens {
		if g.ID == id || (len(id) >= 6 && strings.HasPrefix(g.ID, id)) {
			found = append(found, g)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Generation{}, fmt.Errorf("%s has no generation %q (ramboot image list shows them)", name, id)
	}
	return Generation{}, fmt.Errorf("%q names %d generations of %s: give more digits", id, len(found), name)
}

// List is name's generations, newest first, with the channels on each.
func (s Store) List(name string) ([]Generation, error) {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, err
	}
	chans := map[string][]string{}
	var gens []Generation
	for _, e := range ents {
		n := e.Name()
		switch {
		case e.Type()&os.ModeSymlink != 0 && strings.HasSuffix(n, Ext):
			target, err := os.Readlink(filepath.Join(s.Dir, n))
			if err != nil {
				continue
			}
			ch := strings.TrimSuffix(n, Ext)
			if ch == name {
				ch = ""
			} else if c, ok := strings.CutPrefix(ch, name+"-"); ok {
				ch = c
			} else {
				continue
			}
			chans[target] = append(chans[target], ch)
		case e.Type().IsRegular() && strings.HasPrefix(n, name+"@") && strings.HasSuffix(n, Ext):
			id := strings.TrimSuffix(strings.TrimPrefix(n, name+"@"), Ext)
			info, err := e.Info()
			if err != nil {
				continue
			}
			g := Generation{Name: name, ID: id, Size: info.Size(), Built: info.ModTime().UTC()}
			if b, err := os.ReadFile(filepath.Join(s.Dir, n+".sha256")); err == nil {
				g.SHA256, _, _ = strings.Cut(string(b), " ")
			}
			gens = append(gens, g)
		}
	}
	for i := range gens {
		gens[i].Channels = chans[gens[i].File()]
		sort.Strings(gens[i].Channels)
	}
	sort.Slice(gens, func(i, j int) bool {
		if !gens[i].Built.Equal(gens[j].Built) {
			return gens[i].Built.After(gens[j].Built)
		}
		return gens[i].ID < gens[j].ID
	})
	return gens, nil
}

// Prune removes name's generations beyond the newest keep, except those a
// channel points at and those pinned (keepAlso: generation ids, say the
// ones nodes.yaml names). It returns what it removed.
func (s Store) Prune(name string, keep int, keepAlso map[string]bool) ([]Generation, error) {
	gens, err := s.List(name)
	if err != nil {
		return nil, err
	}
	var removed []Generation
	for i, g := range gens {
		if i < keep || len(g.Channels) > 0 || keepAlso[g.ID] {
			continue
		}
		p := filepath.Join(s.Dir, g.File())
		if err := os.Remove(p); err != nil {
			return removed, err
		}
		os.Remove(p + ".sha256")
		removed = append(removed, g)
	}
	return removed, nil
}

// Promotion is one line of the history.
type Promotion struct {
	At      time.Time `json:"at"`
	Channel string    `json:"channel"`
	Gen     string    `json:"generation"`
	Why     string    `json:"why"`
}

// History is name's promotions, oldest first.
func (s Store) History(name string) ([]Promotion, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, name+".history"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Promotion
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var p Promotion
		if json.Unmarshal(sc.Bytes(), &p) == nil {
			out = append(out, p)
		}
	}
	return out, sc.Err()
}

func (s Store) logPromotion(name, channel, id, why string) error {
	hist, err := s.History(name)
	if err != nil {
		return err
	}
	hist = append(hist, Promotion{At: s.now(), Channel: channel, Gen: id, Why: why})
	if len(hist) > 256 { // bounded: the recent ones are what a rollback needs
		hist = hist[len(hist)-256:]
	}
	var b bytes.Buffer
	for _, h := range hist {
		line, _ := json.Marshal(h)
		b.Write(append(line, '\n'))
	}
	return atomicfile.Write(filepath.Join(s.Dir, name+".history"), b.Bytes(), atomicfile.Options{})
}

// point turns channel's links to generation id: the digest's first.
func (s Store) point(name, channel, id string) error {
	ch := filepath.Join(s.Dir, ChannelFile(name, channel))
	if err := relink(GenFile(name, id)+".sha256", ch+".sha256"); err != nil {
		return err
	}
	if err := relink(GenFile(name, id), ch); err != nil {
		return err
	}
	return atomicfile.SyncDir(s.Dir)
}

// relink makes link a symbolic link to target, atomically (a new link
// renamed over the old one).
func relink(target, link string) error {
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func chanName(c string) string {
	if c == "" {
		return "(default)"
	}
	return c
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}
