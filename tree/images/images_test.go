package images

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sumOf(b string) string { h := sha256.Sum256([]byte(b)); return hex.EncodeToString(h[:]) }

// build writes content as a freshly built image and adds it.
func build(t *testing.T, s Store, content string, at time.Time) Generation {
	t.Helper()
	tmp := filepath.Join(s.Dir, "debian.squashfs.tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := s.Add("debian", tmp, sumOf(content))
	if err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(s.Dir, g.File()), at, at)
	g, _ = s.Get("debian", g.ID)
	return g
}

// read is what a node fetching the channel gets: the digest file's first
// word and the image.
func read(t *testing.T, s Store, channel string) (sum, image string) {
	t.Helper()
	d, err := os.ReadFile(filepath.Join(s.Dir, ChannelFile("debian", channel)+".sha256"))
	if err != nil {
		t.Fatal(err)
	}
	i, err := os.ReadFile(filepath.Join(s.Dir, ChannelFile("debian", channel)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(d))[0], string(i)
}

// TestGenerations: builds are generations side by side; promote points a
// channel (and its digest) at one, rollback goes back without a rebuild,
// a canary channel moves alone, the same bytes are the same generation,
// and prune keeps what a channel or a pin names.
func TestGenerations(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := Store{Dir: dir, Now: func() time.Time { return t0 }}
	g1 := build(t, s, "image one", t0)
	if _, err := s.Promote("debian", "", g1.ID); err != nil {
		t.Fatal(err)
	}
	g2 := build(t, s, "image two", t0.Add(time.Hour))
	if sum, img := read(t, s, ""); sum != sumOf("image one") || img != "image one" {
		t.Fatalf("a new generation moved the channel before its promotion: %s %q", sum, img)
	}
	if _, err := s.Promote("debian", "", g2.ID[:6]); err != nil {
		t.Fatal(err)
	}
	if sum, img := read(t, s, ""); sum != sumOf("image two") || img != "image two" {
		t.Errorf("after promote: %s %q", sum, img)
	}
	from, to, err := s.Rollback("debian", "")
	if err != nil || from.ID != g2.ID || to.ID != g1.ID {
		t.Fatalf("rollback: %s -> %s, %v", from.ID, to.ID, err)
	}
	if sum, img := read(t, s, ""); sum != sumOf("image one") || img != "image one" {
		t.Errorf("after rollback: %s %q", sum, img)
	}
	// A canary channel on the new one; the default stays.
	if _, err := s.Promote("debian", "canary", g2.ID); err != nil {
		t.Fatal(err)
	}
	if sum, _ := read(t, s, "canary"); sum != sumOf("image two") {
		t.Errorf("canary: %s", sum)
	}
	if sum, _ := read(t, s, ""); sum != sumOf("image one") {
		t.Errorf("the default moved with the canary: %s", sum)
	}
	// The same bytes again: the same generation, no copy.
	if again := build(t, s, "image two", t0.Add(2*time.Hour)); again.ID != g2.ID {
		t.Errorf("the same bytes made generation %s, not %s", again.ID, g2.ID)
	}
	g3 := build(t, s, "image three", t0.Add(3*time.Hour))
	g4 := build(t, s, "image four", t0.Add(4*time.Hour))
	gens, err := s.List("debian")
	if err != nil || len(gens) != 4 || gens[0].ID != g4.ID {
		t.Fatalf("list: %+v, %v", gens, err)
	}
	chans := map[string]string{}
	for _, g := range gens {
		chans[g.ID] = strings.Join(g.Channels, ",")
	}
	if chans[g1.ID] != "" || chans[g2.ID] != "canary" {
		t.Errorf("channels on the generations: %v (want default on %s, canary on %s)", chans, g1.ID, g2.ID)
	}
	// Prune to 1: g4 (newest) stays, g1 and g2 have channels, g3 is pinned;
	// nothing else there to remove, so unpin g3.
	removed, err := s.Prune("debian", 1, map[string]bool{g3.ID: true})
	if err != nil || len(removed) != 0 {
		t.Errorf("prune with g3 pinned removed %v, %v", removed, err)
	}
	removed, err = s.Prune("debian", 1, nil)
	if err != nil || len(removed) != 1 || removed[0].ID != g3.ID {
		t.Errorf("prune removed %+v, %v; want %s", removed, err, g3.ID)
	}
	if _, err := os.Stat(filepath.Join(dir, g3.File()+".sha256")); !os.IsNotExist(err) {
		t.Errorf("pruned generation's digest left: %v", err)
	}
	// Rollback with nothing before: an error naming what to do.
	if _, _, err := s.Rollback("debian", "canary"); err == nil || !strings.Contains(err.Error(), "no earlier generation") {
		t.Errorf("rollback of a channel with one promotion: %v", err)
	}
	for _, c := range []string{"Canary", "a-b", strings.Repeat("x", 33)} {
		if _, err := s.Promote("debian", c, g1.ID); err == nil {
			t.Errorf("channel %q accepted", c)
		}
	}
	if _, err := s.Get("debian", "ffff"); err == nil {
		t.Error("a generation that is not there was found")
	}
}

// TestAdopt: an image from before generations (a regular file at the
// channel's name) becomes a generation, on the default channel, not lost.
func TestAdopt(t *testing.T) {
	dir := t.TempDir()
	s := Store{Dir: dir}
	os.WriteFile(filepath.Join(dir, "debian.squashfs"), []byte("old image"), 0o644)
	os.WriteFile(filepath.Join(dir, "debian.squashfs.sha256"), []byte(sumOf("old image")+"  debian.squashfs\n"), 0o644)
	g := build(t, s, "new image", time.Now())
	if sum, img := read(t, s, ""); sum != sumOf("old image") || img != "old image" {
		t.Errorf("after adding a generation the default channel has %s %q; want the adopted old image", sum, img)
	}
	gens, _ := s.List("debian")
	if len(gens) != 2 {
		t.Fatalf("generations %+v; want the adopted one and %s", gens, g.ID)
	}
	if _, _, err := s.Rollback("debian", ""); err == nil {
		t.Error("rollback from the adopted image, with nothing before it: no error")
	}
}
