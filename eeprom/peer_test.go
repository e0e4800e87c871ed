package eeprom

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The upstream peers.
//
// testdata/ holds the copies of rpi-eeprom-config (before upstream's A/B
// change) and rpi-eeprom-digest that this package was first checked
// against. The current rpi-eeprom-config (86759b04, with 53989398 "Support
// AB updates") is not in testdata/: a test runs it when RAMBOOT_RPI_EEPROM
// names a directory holding raspberrypi/rpi-eeprom's files (a checkout, or
// `git archive` of one): its rpi-eeprom-config, rpi-eeprom-digest,
// tools/ and firmware-2711/latest, firmware-2712/latest. Without it the
// tests compare with testdata/upstream.sha256, the sha256 of every output
// that script wrote for the same inputs, recorded with -update-golden.
const upstreamEnv = "RAMBOOT_RPI_EEPROM"

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/upstream.sha256 from $"+upstreamEnv+"/rpi-eeprom-config")

const goldenFile = "testdata/upstream.sha256"

// upstreamDir returns $RAMBOOT_RPI_EEPROM, or "" when unset.
func upstreamDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(upstreamEnv)
	if dir == "" {
		if *updateGolden {
			t.Fatalf("-update-golden needs %s=DIR, a directory with raspberrypi/rpi-eeprom's files", upstreamEnv)
		}
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "rpi-eeprom-config")); err != nil {
		t.Fatalf("%s=%s: %v; it must name a directory with raspberrypi/rpi-eeprom's files (rpi-eeprom-config, rpi-eeprom-digest, firmware-27xx/)", upstreamEnv, dir, err)
	}
	return dir
}

// golden holds testdata/upstream.sha256: case name → sha256 of upstream's
// output. With -update-golden the cases seen are written back.
type golden struct {
	mu     sync.Mutex
	sums   map[string]string
	header []string
	seen   map[string]string
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	g := &golden{sums: map[string]string{}, seen: map[string]string{}}
	f, err := os.Open(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			g.header = append(g.header, line)
			continue
		}
		sum, name, ok := strings.Cut(line, " ")
		if !ok || len(sum) != 64 {
			t.Fatalf("%s: bad line %q", goldenFile, line)
		}
		g.sums[name] = sum
	}
	if *updateGolden {
		t.Cleanup(func() { g.write(t) })
	}
	return g
}

// check compares our output for case name with upstream's recorded one.
// upstream is upstream's output when its script ran, else nil.
func (g *golden) check(t *testing.T, name string, ours, upstream []byte) {
	t.Helper()
	sum := fmt.Sprintf("%x", sha256.Sum256(ours))
	g.mu.Lock()
	defer g.mu.Unlock()
	if upstream != nil {
		if !bytes.Equal(ours, upstream) {
			i := firstDiff(ours, upstream)
			t.Errorf("%s: differs from upstream rpi-eeprom-config at 0x%x: ours % x, upstream % x", name, i, ours[i:min(i+16, len(ours))], upstream[i:min(i+16, len(upstream))])
		}
		g.seen[name] = fmt.Sprintf("%x", sha256.Sum256(upstream))
		if *updateGolden {
			return
		}
	}
	want, ok := g.sums[name]
	switch {
	case !ok:
		t.Errorf("%s: not in %s; run `%s=DIR go test ./eeprom/ -run %s -update-golden`", name, goldenFile, upstreamEnv, t.Name())
	case want != sum:
		t.Errorf("%s: sha256 %s, but upstream rpi-eeprom-config wrote %s (%s)", name, sum, want, goldenFile)
	}
}

func (g *golden) write(t *testing.T) {
	if t.Failed() {
		t.Logf("not rewriting %s: the test failed", goldenFile)
		return
	}
	for k, v := range g.seen {
		g.sums[k] = v
	}
	var b strings.Builder
	for _, h := range g.header {
		b.WriteString(h + "\n")
	}
	names := make([]string, 0, len(g.sums))
	for k := range g.sums {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(&b, "%s %s\n", g.sums[k], k)
	}
	if err := os.WriteFile(goldenFile, []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}

// A pyScript runs one Python script.
type pyScript struct {
	python, script string
}

func (p pyScript) run(args ...string) (string, error) {
	cmd := exec.Command(p.python, append([]string{p.script}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s %s: %v\n%s", p.python, p.script, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// edit runs `rpi-eeprom-config --config CONF --out OUT IN` plus extra
// arguments and returns OUT's bytes.
func (p pyScript) edit(t *testing.T, dir, name string, in []byte, conf string, extra ...string) []byte {
	t.Helper()
	inPath := writeFile(t, dir, name+"-in.bin", in)
	confPath := writeFile(t, dir, name+".txt", []byte(conf))
	out := filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+"-out.bin")
	if _, err := p.run(append(append([]string{"--config", confPath}, extra...), "--out", out, inPath)...); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// configPeers returns the vendored pre-A/B script and, with
// RAMBOOT_RPI_EEPROM, the current one (else head.script is "").
func configPeers(t *testing.T) (vendored, head pyScript) {
	t.Helper()
	needTool(t, "python3")
	abs, err := filepath.Abs("testdata/rpi-eeprom-config")
	if err != nil {
		t.Fatal(err)
	}
	vendored = pyScript{"python3", abs}
	if dir := upstreamDir(t); dir != "" {
		head = pyScript{"python3", filepath.Join(dir, "rpi-eeprom-config")}
	} else {
		t.Logf("%s is unset: comparing with upstream's recorded output (%s) and with the pre-A/B script in testdata/ where it agrees", upstreamEnv, goldenFile)
	}
	return vendored, head
}

// TestPythonPeer runs upstream rpi-eeprom-config on the same images and
// configs and wants the same bytes.
func TestPythonPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs upstream's Python script hundreds of times (~30 s): not in -short (make unit)")
	}
	vendored, head := configPeers(t)
	g := loadGolden(t)
	dir := t.TempDir()
	t.Run("edge", func(t *testing.T) { t.Parallel(); pythonEdges(t, g, vendored, head, dir) })
	for _, l := range layouts() {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			// The vendored script predates the A/B change, which shows only
			// on the A/B layout: there it erases partition B's header.
			preAB := l.name != "pi5-ab"
			reader := vendored
			if head.script != "" {
				reader = head
			}
			im, err := Parse(l.image)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := reader.run(writeFile(t, dir, l.name+"-0.bin", l.image)); err != nil || got != baseConfig {
				t.Fatalf("python reads %q, %v; want %q", got, err, baseConfig)
			}
			// A chain of edits, each applied to the previous output: grow,
			// fill the room, leave the smallest padding section, shrink,
			// empty, back.
			sizes := []int{300, l.maxConfig, l.maxConfig - 16, 10, 0, 2024, len(baseConfig) + 1}
			for step, n := range sizes {
				name := fmt.Sprintf("config/%s/%d", l.name, step+1)
				in := im.Bytes()
				conf := configOfLen(n)
				if err := im.SetConfig(conf); err != nil {
					t.Fatalf("step %d, %d bytes: %v", step+1, n, err)
				}
				var up []byte
				if head.script != "" {
					up = head.edit(t, dir, name, in, conf)
				}
				g.check(t, name, im.Bytes(), up)
				if preAB {
					if old := vendored.edit(t, dir, name+"-vendored", in, conf); !bytes.Equal(old, im.Bytes()) {
						i := firstDiff(im.Bytes(), old)
						t.Errorf("%s: differs from the vendored rpi-eeprom-config at 0x%x", name, i)
					}
				}
				// And python reads back what we wrote.
				if got, err := reader.run(writeFile(t, dir, name+"-ours.bin", im.Bytes())); err != nil || got != conf {
					t.Fatalf("step %d: python reads %q from our image, %v; want %q", step+1, got, err, conf)
				}
			}
			// Both refuse more than 4076 bytes.
			cfg := writeFile(t, dir, l.name+"-big.txt", []byte(configOfLen(MaxFileSize+1)))
			if _, err := reader.run("--config", cfg, "--out", filepath.Join(dir, l.name+"-big.bin"), writeFile(t, dir, l.name+"-last.bin", im.Bytes())); err == nil || !strings.Contains(err.Error(), "The maximum size is 4076 bytes") {
				t.Errorf("python took a 4077-byte config: %v", err)
			}
		})
	}
	// What the A/B change fixed: the pre-A/B script pads bootconf.txt of
	// an A/B image over partition B's padding header at 0x107000.
	t.Run("pre-ab", func(t *testing.T) {
		l := layouts()[4]
		im, _ := Parse(l.image)
		if err := im.SetConfig(baseConfig + "BOOT_ORDER=0xf21\n"); err != nil {
			t.Fatal(err)
		}
		old := vendored.edit(t, dir, "pre-ab", l.image, baseConfig+"BOOT_ORDER=0xf21\n")
		if bytes.Equal(old[PartitionEnd:], l.image[PartitionEnd:]) || !bytes.Equal(im.Bytes()[PartitionEnd:], l.image[PartitionEnd:]) {
			t.Errorf("partition B: the pre-A/B script kept it %v, SetConfig kept it %v; want false, true", bytes.Equal(old[PartitionEnd:], l.image[PartitionEnd:]), bytes.Equal(im.Bytes()[PartitionEnd:], l.image[PartitionEnd:]))
		}
	})
}

// TestBelowPartition: a file below 64 KiB, which rpi-eeprom-config no
// longer edits. In an image without the A/B layout SetConfig edits it as
// the pre-A/B script does; in an A/B image it refuses.
func TestBelowPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("runs upstream's Python script: not in -short (make unit)")
	}
	vendored, head := configPeers(t)
	dir := t.TempDir()
	b := newBuilder(SizePi4)
	b.blob(Magic, 0x7ff0)
	b.padTo(0x9000)
	b.file(ConfigFile, 0, []byte(baseConfig))
	b.padTo(0xa000)
	b.file("pubkey.bin", 0, make([]byte, 264))
	conf := baseConfig + "BOOT_ORDER=0xf21\n"
	im, err := Parse(b.data)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.SetConfig(conf); err != nil {
		t.Fatal(err)
	}
	if old := vendored.edit(t, dir, "below", b.data, conf); !bytes.Equal(old, im.Bytes()) {
		t.Errorf("differs from the pre-A/B script at 0x%x", firstDiff(old, im.Bytes()))
	}
	if head.script != "" {
		in := writeFile(t, dir, "below-head-in.bin", b.data)
		cfg := writeFile(t, dir, "below-head.txt", []byte(conf))
		if _, err := head.run("--config", cfg, "--out", filepath.Join(dir, "below-head.bin"), in); err == nil || !strings.Contains(err.Error(), "Update target bootconf.txt not found") {
			t.Errorf("the current script: %v, want \"Update target bootconf.txt not found\"", err)
		}
	}

	// An A/B image whose only bootconf.txt is in the read-only part.
	b = newBuilder(SizePi5)
	b.blob(Magic, 0x6000)
	b.file(ConfigFile, 0, []byte(baseConfig))
	b.padTo(0x10000)
	b.file("bootsys", 0, make([]byte, 100))
	b.padTo(PartitionEnd)
	b.padTo(SizePi5 - 2*EraseAlign)
	im, err = Parse(b.data)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.SetConfig(conf); err == nil || !strings.Contains(err.Error(), "read-only part of an A/B image") || !bytes.Equal(im.Bytes(), b.data) {
		t.Errorf("A/B image, bootconf.txt in the read-only part: %v", err)
	}
}

// pythonEdges: where the room after a file is at its smallest.
func pythonEdges(t *testing.T, g *golden, vendored, head pyScript, dir string) {
	// l's config is followed by pubkey.bin.
	l := layouts()[0]
	peer := vendored
	if head.script != "" {
		peer = head
	}
	// A section ending in the 4 bytes before the next passes upstream's
	// check (20+len) and overwrites the next section's magic; SetConfig
	// refuses it.
	n := l.maxConfig + 4
	if _, err := Parse(peer.edit(t, dir, "edge-plus4", l.image, configOfLen(n))); !errors.Is(err, ErrNotImage) || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("upstream's +4 output parses (%v): has upstream changed its size check?", err)
	}
	im, _ := Parse(l.image)
	if err := im.SetConfig(configOfLen(n)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("SetConfig(%d bytes) = %v, want ErrTooLarge: upstream mangles the image", n, err)
	}

	// Exactly 8 bytes left: a zero-length padding section since 53989398
	// (before, 0xff ended the chain there and pubkey.bin was lost).
	n = l.maxConfig - 12
	im, _ = Parse(l.image)
	if err := im.SetConfig(configOfLen(n)); err != nil {
		t.Fatal(err)
	}
	if _, ok := im.File("pubkey.bin"); !ok {
		t.Errorf("8 bytes left: pubkey.bin is gone: %+v", im.Sections())
	}
	at := l.nextAt - 8
	if magic, length := binary.BigEndian.Uint32(im.Bytes()[at:]), binary.BigEndian.Uint32(im.Bytes()[at+4:]); magic != PadMagic || length != 0 {
		t.Errorf("8 bytes left: %08x %d at 0x%x, want a zero-length padding section", magic, length, at)
	}
	var up []byte
	if head.script != "" {
		up = head.edit(t, dir, "edge-8", l.image, configOfLen(n))
	}
	g.check(t, "edge/8-bytes-left", im.Bytes(), up)
	old, err := Parse(vendored.edit(t, dir, "edge-8-vendored", l.image, configOfLen(n)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := old.File("pubkey.bin"); ok {
		t.Errorf("the vendored pre-A/B script's 8-byte-tail output still shows pubkey.bin: is it the script testdata/README.md names?")
	}
}
