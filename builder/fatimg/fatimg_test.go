package fatimg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ramboot/ramboot/internal/testenv"
)

var epoch = time.Unix(1700000000, 0) // 2023-11-14 22:13:20 UTC

// random returns n bytes that differ from cluster to cluster, so a
// misplaced cluster shows.
func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// piFiles is a boot tree with every case the writer must get right. want
// maps each long name to the short name mdir shows for it.
func piFiles() (files []File, want map[string]string) {
	files = []File{
		{Name: "config.txt", Data: []byte("arm_64bit=1\nkernel=kernel8.img\n")},            // 8.3 lowercase: case flags, no LFN
		{Name: "CMDLINE.TXT", Data: []byte("console=serial0,115200 ramboot.board=rpi4\n")}, // 8.3 uppercase: nothing else
		{Name: "kernel8.img", Data: random(1, 3<<20+123)},                                  // many clusters
		{Name: "bcm2711-rpi-4-b.dtb", Data: random(2, 50000)},
		{Name: "bcm2711-rpi-400.dtb", Data: random(3, 50001)},
		{Name: "bcm2711-rpi-cm4.dtb", Data: random(4, 1)},
		{Name: "bcm2711-rpi-cm4s.dtb", Data: random(5, 2)},
		{Name: "BCM271~2.DTB", Data: []byte("takes the short name ~2 first")},
		{Name: "initramfs.cpio.gz", Data: random(6, 700000)},
		{Name: "Mixed.Txt", Data: []byte("mixed case: 8.3 but needs a long name")},
		{Name: "config.TXT.bak", Data: []byte("two dots")},
		{Name: "empty.txt"},                         // no cluster
		{Name: "one.bin", Data: random(7, 512)},     // exactly one cluster
		{Name: "abcdefghij.kl", Data: []byte("13")}, // one LFN entry without terminator
		{Name: "a name with spaces and a rather long tail, 47.txt", Data: []byte("4 LFN entries")},
		{Name: "café.txt", Data: []byte("non-ASCII")},
		{Name: "overlays/README", Data: []byte("overlays\n")},
		{Name: "overlays/disable-bt.dtbo", Data: random(8, 1500)},
		{Name: "overlays/overlay_map.dtb", Data: random(9, 5000)},
		{Name: "overlays/sub dir/deep.txt", Data: []byte("two levels down")},
		{Name: "overlays/sub dir/empty"},
	}
	want = map[string]string{
		"config.txt":          "config   txt",
		"CMDLINE.TXT":         "CMDLINE  TXT",
		"kernel8.img":         "kernel8  img",
		"BCM271~2.DTB":        "BCM271~2 DTB",
		"bcm2711-rpi-4-b.dtb": "BCM271~1 DTB",
		"bcm2711-rpi-400.dtb": "BCM271~3 DTB",
		"bcm2711-rpi-cm4.dtb": "BCM271~4 DTB",
		// "bcm2711-rpi-cm4s.dtb" sorts after the rest and gets ~5
		"bcm2711-rpi-cm4s.dtb": "BCM271~5 DTB",
		"initramfs.cpio.gz":    "INITRA~1 GZ ",
		"Mixed.Txt":            "MIXED    TXT",
		"config.TXT.bak":       "CONFIG~1 BAK",
		"empty.txt":            "empty    txt",
		"one.bin":              "one      bin",
		"abcdefghij.kl":        "ABCDEF~1 KL ",
		"a name with spaces and a rather long tail, 47.txt": "ANAMEW~1 TXT",
		"café.txt":                  "CAF_~1   TXT",
		"overlays":                  "overlays    ",
		"overlays/README":           "README      ",
		"overlays/disable-bt.dtbo":  "DISABL~1 DTB",
		"overlays/overlay_map.dtb":  "OVERLA~1 DTB",
		"overlays/sub dir":          "SUBDIR~1    ",
		"overlays/sub dir/deep.txt": "deep     txt",
		"overlays/sub dir/empty":    "empty       ",
	}
	return files, want
}

// tool returns the path of a peer program or skips (fails under
// RAMBOOT_STRICT=1). The dosfstools programs live in /usr/sbin, which a
// user's PATH may lack.
func tool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs mtools and dosfstools: not in -short")
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p
		}
	}
	testenv.Skipf(t, "%s not installed (packages mtools, dosfstools; e2e/deps.sh installs them)", name)
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func build(t *testing.T, files []File, o Options) (img []byte, path string) {
	t.Helper()
	img, err := Build(files, o)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "boot.img")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return img, path
}

// bpb is what the tests read back from a boot sector.
type bpb struct {
	spc, reserved, fatLen, total, clusters, dataStart int
}

func readBPB(img []byte) bpb {
	le := binary.LittleEndian
	b := bpb{spc: int(img[13]), reserved: int(le.Uint16(img[14:])), fatLen: int(le.Uint16(img[22:])),
		total: int(le.Uint16(img[19:]))}
	if b.total == 0 {
		b.total = int(le.Uint32(img[32:]))
	}
	b.dataStart = b.reserved + b.fatLen + rootSectors
	b.clusters = (b.total - b.dataStart) / b.spc
	return b
}

// TestReadBack reads every file back with mcopy, byte for byte, checks that
// nothing else is in the image, and that mdir shows the expected short
// names, case and times.
func TestReadBack(t *testing.T) {
	mcopy, mdir := tool(t, "mcopy"), tool(t, "mdir")
	files, want := piFiles()
	_, path := build(t, files, Options{Label: "BOOT", ModTime: epoch})

	for _, f := range files {
		got := run(t, mcopy, "-n", "-i", path, "::/"+f.Name, "-")
		if !bytes.Equal([]byte(got), f.Data) {
			t.Errorf("mcopy %s: %d bytes, want %d (equal length: %v)", f.Name, len(got), len(f.Data), len(got) == len(f.Data))
		}
	}

	// Everything, recursively: exactly the files given, nothing more.
	out := t.TempDir()
	run(t, mcopy, "-s", "-n", "-i", path, "::/*", out)
	gotTree := map[string]string{}
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(out, p)
		gotTree[filepath.ToSlash(rel)] = fmt.Sprintf("%x", b)
		return err
	})
	wantTree := map[string]string{}
	for _, f := range files {
		wantTree[f.Name] = fmt.Sprintf("%x", f.Data)
	}
	if diff := cmp.Diff(wantTree, gotTree); diff != "" {
		t.Errorf("mcopy -s: (-want +got, contents in hex)\n%s", diff[:min(len(diff), 3000)])
	}

	// Short names, as mdir lists them: "BCM271~1 DTB  1 2023-11-14  22:13  bcm2711-rpi-4-b.dtb".
	line := regexp.MustCompile(`^(.{12}) +(?:\d+|<DIR>) +(\d{4}-\d\d-\d\d  \d\d:\d\d) (?: (.+))?$`)
	got := map[string]string{}
	for _, dir := range []string{"", "overlays", "overlays/sub dir"} {
		for _, l := range strings.Split(run(t, mdir, "-i", path, "::/"+dir), "\n") {
			m := line.FindStringSubmatch(l)
			if m == nil || strings.HasPrefix(m[1], ".") {
				continue
			}
			if m[2] != "2023-11-14  22:13" {
				t.Errorf("mdir %s: %q has time %q, want 2023-11-14  22:13", dir, m[1], m[2])
			}
			name := m[3]
			if name == "" { // no long name: the short one in its case
				name = strings.TrimSpace(m[1][:8])
				if ext := strings.TrimSpace(m[1][9:]); ext != "" {
					name += "." + ext
				}
			}
			got[strings.TrimPrefix(dir+"/"+name, "/")] = m[1]
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("short names (-want +got):\n%s", diff)
	}

}

// fsckClean runs fsck.fat read-only with verification and fails on any
// complaint: a non-zero exit, or a line other than the ones it prints for
// a clean filesystem.
func fsckClean(t *testing.T, fsck, path string) string {
	t.Helper()
	out, err := exec.Command(fsck, "-n", "-v", "-V", path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("exit: %v\n%s", err, out)
	}
	info := regexp.MustCompile(`^(fsck\.fat \d|Checking we can access|Boot sector contents:|System ID |Media byte |\s+\d+ (bytes per|reserved sector|FATs, 16 bit|root directory entries|data clusters|hidden sectors|sectors total)|First FAT starts|Root directory starts|Data area starts|\d+ sectors/track, \d+ heads|Starting (check/repair|verification) pass\.|Checking for unused clusters\.|.*: \d+ files, \d+/\d+ clusters$|$)`)
	for _, l := range strings.Split(string(out), "\n") {
		if !info.MatchString(l) {
			return fmt.Sprintf("unexpected line %q in\n%s", l, out)
		}
	}
	if !strings.Contains(string(out), "1 FATs, 16 bit entries") {
		return fmt.Sprintf("not one 16-bit FAT:\n%s", out)
	}
	return ""
}

// TestFsckClean checks images of each cluster size with fsck.fat, and that
// the check would see a broken image. In the big ones, a file after a
// sparse one shows that clusters of 2 and 4 sectors are where they should be.
func TestFsckClean(t *testing.T) {
	fsck, mcopy := tool(t, "fsck.fat"), tool(t, "mcopy")
	files, _ := piFiles()
	sparse := func(size int64) string {
		p := filepath.Join(t.TempDir(), "sparse")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		return p
	}
	after := File{Name: "z/after.bin", Data: random(10, 100001)}
	for _, c := range []struct {
		name  string
		files []File
		spc   int
	}{
		{"pi tree", files, 1},
		{"empty", nil, 1},
		{"40 MiB", []File{{Name: "big.bin", Src: sparse(40 << 20)}, after}, 2},
		{"90 MiB", []File{{Name: "a/huge.bin", Src: sparse(90 << 20)}, after}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "boot.img")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Write(f, c.files, Options{Label: "BOOT", ModTime: epoch})
			if err := errors.Join(err, f.Close()); err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 512)
			if f, err := os.Open(path); err == nil {
				io.ReadFull(f, head)
				f.Close()
			}
			if b := readBPB(head); b.spc != c.spc {
				t.Errorf("%d sectors per cluster, want %d", b.spc, c.spc)
			}
			if msg := fsckClean(t, fsck, path); msg != "" {
				t.Error(msg)
			}
			if c.spc > 1 {
				if got := run(t, mcopy, "-n", "-i", path, "::/z/after.bin", "-"); got != string(after.Data) {
					t.Errorf("z/after.bin read back: %d bytes, not the %d written", len(got), len(after.Data))
				}
			}
		})
	}

	// The control: an orphaned cluster (the free last one marked used) must
	// make the same check fail.
	img, _ := build(t, files, Options{Label: "BOOT", ModTime: epoch})
	b := readBPB(img)
	binary.LittleEndian.PutUint16(img[b.reserved*sectorSize+2*(b.clusters+1):], 0xffff)
	bad := filepath.Join(t.TempDir(), "bad.img")
	os.WriteFile(bad, img, 0o644)
	if fsckClean(t, fsck, bad) == "" {
		t.Error("fsck.fat found nothing wrong in an image with an orphaned cluster: the check proves nothing")
	}
}

// TestMinfo reads the boot sector back with minfo.
func TestMinfo(t *testing.T) {
	minfo := tool(t, "minfo")
	files, _ := piFiles()
	img, path := build(t, files, Options{Label: "ramboot-4", ModTime: epoch, VolumeID: 0xC0FFEE42})
	b := readBPB(img)
	out := run(t, minfo, "-i", path, "::")
	for _, want := range []string{
		`disk label="RAMBOOT-4  "`,
		`disk type="FAT16   "`,
		"serial number: C0FFEE42",
		"sector size: 512 bytes",
		"cluster size: 1 sectors",
		"reserved (boot) sectors: 1",
		"fats: 1",
		"max available root directory slots: 256",
		fmt.Sprintf("small size: %d sectors", len(img)/512),
		fmt.Sprintf("sectors per fat: %d", b.fatLen),
		"media descriptor byte: 0xf8",
		"hidden sectors: 0",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("minfo lacks %q:\n%s", want, out)
		}
	}
	if len(img)%1024 != 0 || b.fatLen*256 < b.clusters+2 || b.clusters < minClusters {
		t.Errorf("geometry %+v for %d bytes", b, len(img))
	}
}

// headWriter keeps the first len(head) bytes written and checks that the
// rest are zeros: it compares an image of hundreds of MiB without holding it.
type headWriter struct {
	head    []byte
	n       int64
	nonzero bool
}

func (w *headWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.n < int64(len(w.head)) {
		c := copy(w.head[w.n:], p)
		p, w.n = p[c:], w.n+int64(c)
	}
	for len(p) > 0 {
		c := min(len(p), len(zeroBlock))
		w.nonzero = w.nonzero || !bytes.Equal(p[:c], zeroBlock[:c])
		p, w.n = p[c:], w.n+int64(c)
	}
	return n, nil
}

// TestEmptyMatchesMkfs compares empty images with mkfs.fat --invariant,
// given the same size, cluster size, label, serial and time: every byte but
// the OEM name and the boot code must be equal. This checks the boot
// sector, the FAT sizing (across the alignment mkfs.fat starts above 8192
// sectors and across cluster sizes) and the label entry.
func TestEmptyMatchesMkfs(t *testing.T) {
	mkfs := tool(t, "mkfs.fat")
	invariant := time.Unix(1426325213, 0) // mkfs.fat --invariant's time
	for _, size := range []int64{0, 4 << 20, 4<<20 + 1024, 24 << 20, 32 << 20, 40 << 20, 128 << 20, 200 << 20, 511 << 20} {
		t.Run(strconv.FormatInt(size>>10, 10)+"KiB", func(t *testing.T) {
			var ours headWriter
			ours.head = make([]byte, 1<<20)
			n, err := Write(&ours, nil, Options{Label: "BOOT", ModTime: invariant, VolumeID: 0x1234abcd, MinSize: size})
			if err != nil {
				t.Fatal(err)
			}
			if ours.nonzero {
				t.Error("non-zero bytes after the first MiB")
			}
			if size != 0 && n != size {
				t.Errorf("%d bytes, want MinSize %d", n, size)
			}
			b := readBPB(ours.head)
			path := filepath.Join(t.TempDir(), "mkfs.img")
			run(t, mkfs, "-C", "-F", "16", "-f", "1", "-s", strconv.Itoa(b.spc), "-g", "1/1", "-S", "512", "-r", "256",
				"-n", "BOOT", "-i", "1234ABCD", "--invariant", "--mbr=n", path, strconv.FormatInt(n>>10, 10))
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			theirs := make([]byte, len(ours.head))
			if _, err := io.ReadFull(f, theirs); err != nil {
				t.Fatal(err)
			}
			if st, _ := f.Stat(); st.Size() != n {
				t.Errorf("mkfs.fat made %d bytes, we %d", st.Size(), n)
			}
			for _, b := range [][]byte{ours.head, theirs} {
				copy(b[3:11], "OEMNAME.")              // ours MSWIN4.1, theirs mkfs.fat
				copy(b[0x3e:0x1fe], make([]byte, 448)) // the boot code
			}
			if i := mismatch(ours.head, theirs); i >= 0 {
				t.Errorf("%d sectors per cluster: first difference at byte %#x: ours % x, mkfs.fat % x",
					b.spc, i, ours.head[i:min(i+16, len(theirs))], theirs[i:min(i+16, len(theirs))])
			}
			t.Logf("%d bytes: %d sectors per cluster, %d clusters, FAT %d sectors", n, b.spc, b.clusters, b.fatLen)
		})
	}
}

func mismatch(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestBootSectorMatchesMkfs: for filled images too, the boot sector is the
// one mkfs.fat makes for that size.
func TestBootSectorMatchesMkfs(t *testing.T) {
	mkfs := tool(t, "mkfs.fat")
	files, _ := piFiles()
	for i, o := range []Options{{}, {MinFree: 1 << 20}, {MinFree: 33 << 20}} {
		o.Label, o.VolumeID = "BOOT", 0x1234abcd
		img, _ := build(t, files, o)
		b := readBPB(img)
		path := filepath.Join(t.TempDir(), "mkfs.img")
		run(t, mkfs, "-C", "-F", "16", "-f", "1", "-s", strconv.Itoa(b.spc), "-g", "1/1", "-S", "512", "-r", "256",
			"-n", "BOOT", "-i", "1234ABCD", "--invariant", "--mbr=n", path, strconv.Itoa(len(img)>>10))
		theirs, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(theirs[11:0x3e], img[11:0x3e]); diff != "" {
			t.Errorf("case %d (%d bytes): BPB (-mkfs.fat +ours):\n%s", i, len(img), diff)
		}
		if free := int64(b.clusters)*int64(b.spc)*512 - int64(usedBytes(files, b.spc)); free < o.MinFree+int64(b.spc)*512 {
			t.Errorf("case %d: %d bytes free, want at least MinFree %d plus a cluster", i, free, o.MinFree)
		}
	}
}

// usedBytes is what the files and directories of piFiles take in clusters
// of spc sectors.
func usedBytes(files []File, spc int) int64 {
	cs := int64(spc) * 512
	var n int64
	for _, f := range files {
		n += roundUp(int64(len(f.Data)), cs)
	}
	return n + 2*cs // overlays and overlays/sub dir: one cluster each
}

// TestReproducible: the same files give the same bytes, whatever their
// order; another time or content gives other bytes and another volume ID.
func TestReproducible(t *testing.T) {
	files, _ := piFiles()
	o := Options{Label: "BOOT", ModTime: epoch}
	a, err := Build(files, o)
	if err != nil {
		t.Fatal(err)
	}
	shuffled := append([]File(nil), files...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b, err := Build(shuffled, o)
	if err != nil {
		t.Fatal(err)
	}
	if i := mismatch(a, b); i >= 0 || len(a) != len(b) {
		t.Fatalf("same files in another order: first difference at %#x", i)
	}
	serial := func(img []byte) uint32 { return binary.LittleEndian.Uint32(img[39:]) }

	later, _ := Build(files, Options{Label: "BOOT", ModTime: epoch.Add(2 * time.Second)})
	if bytes.Equal(a, later) {
		t.Error("ModTime 2 s later: same bytes")
	}
	changed := append([]File(nil), files...)
	changed[0].Data = []byte("arm_64bit=0\nkernel=kernel8.img\n") // same size
	other, _ := Build(changed, o)
	if serial(other) == serial(a) || serial(later) == serial(a) {
		t.Errorf("volume IDs %08x, %08x (later), %08x (content): want all different", serial(a), serial(later), serial(other))
	}

	// Src gives the same image as Data.
	dir := t.TempDir()
	fromDisk := append([]File(nil), files...)
	for i, f := range fromDisk {
		if len(f.Data) > 4096 {
			p := filepath.Join(dir, strconv.Itoa(i))
			os.WriteFile(p, f.Data, 0o644)
			fromDisk[i] = File{Name: f.Name, Src: p}
		}
	}
	c, err := Build(fromDisk, o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, c) {
		t.Error("the same files given as Src: other bytes")
	}
}

// TestTooLarge: over MaxSize, or over what FAT16 holds, is an error that
// names the sizes, the limit and the largest file, before writing anything.
func TestTooLarge(t *testing.T) {
	dir := t.TempDir()
	sparse := func(name string, size int64) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const limit = 128 << 20
	var w bytes.Buffer
	_, err := Write(&w, []File{{Name: "config.txt", Data: []byte("x")}, {Name: "initramfs.cpio.gz", Src: sparse("initrd", 130<<20)}},
		Options{MaxSize: limit})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("130 MiB of files under a 128 MiB limit: %v, want ErrTooLarge", err)
	}
	for _, want := range []string{"the image needs 136", "limit is 134217728 bytes (128.0 MiB)", "initramfs.cpio.gz 136314880 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if w.Len() != 0 {
		t.Errorf("%d bytes written before the error", w.Len())
	}

	// Just under the limit fits, at 2 KiB clusters.
	n, err := Write(io.Discard, []File{{Name: "initramfs.cpio.gz", Src: sparse("fits", 127<<20)}}, Options{MaxSize: limit})
	if err != nil || n > limit {
		t.Errorf("127 MiB of files: %d bytes, %v", n, err)
	}

	_, err = Write(io.Discard, []File{{Name: "huge", Src: sparse("huge", 600<<20)}}, Options{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "FAT16") {
		t.Errorf("600 MiB without a limit: %v, want ErrTooLarge naming FAT16", err)
	}
}

// TestBadInput: names FAT cannot hold, or that collide, are refused.
func TestBadInput(t *testing.T) {
	long := strings.Repeat("x", 256)
	for _, c := range []struct {
		files []File
		want  string
	}{
		{[]File{{Name: ""}}, "empty"},
		{[]File{{Name: "/abs"}}, "empty"},
		{[]File{{Name: "a//b"}}, "empty"},
		{[]File{{Name: "a/../b"}}, ".."},
		{[]File{{Name: "a:b"}}, "not allowed"},
		{[]File{{Name: "tab\there"}}, "not allowed"},
		{[]File{{Name: "dot."}}, "end with"},
		{[]File{{Name: " lead"}}, "begin with"},
		{[]File{{Name: long}}, "255"},
		{[]File{{Name: "bad\xff"}}, "UTF-8"},
		{[]File{{Name: "Config.txt"}, {Name: "config.TXT"}}, "same FAT name"},
		{[]File{{Name: "overlays"}, {Name: "overlays/x"}}, "same FAT name"},
		{[]File{{Name: "overlays/x"}, {Name: "OVERLAYS"}}, "same FAT name"},
		{[]File{{Name: "a", Data: []byte("x"), Src: "/etc/hostname"}}, "both Data and Src"},
		{[]File{{Name: "a", Src: "/nonexistent/file"}}, "no such file"},
		{[]File{{Name: "a", Src: "/"}}, "not a regular file"},
	} {
		_, err := Build(c.files, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.files[len(c.files)-1].Name, err, c.want)
		}
	}
	for _, label := range []string{"TWELVE CHARS", " LEAD", "A.B", "naïve"} {
		if _, err := Build(nil, Options{Label: label}); err == nil || !strings.Contains(err.Error(), "volume label") {
			t.Errorf("label %q: %v, want refused", label, err)
		}
	}

	// 256 root entries at most, the label's included.
	var many []File
	for i := range 255 {
		many = append(many, File{Name: fmt.Sprintf("F%d", i)})
	}
	if _, err := Build(many, Options{Label: "BOOT"}); err != nil {
		t.Errorf("255 files and a label: %v", err)
	}
	many[0].Name = "a long name"
	if _, err := Build(many, Options{Label: "BOOT"}); err == nil || !strings.Contains(err.Error(), "root directory needs 257") {
		t.Errorf("257 root entries: %v", err)
	}
}

// TestShortNames checks the name rules without tools, in -short too.
func TestShortNames(t *testing.T) {
	for name, want := range map[string]string{
		"CONFIG.TXT":   "CONFIG  TXT/00/-",
		"config.txt":   "CONFIG  TXT/18/-",
		"config.TXT":   "CONFIG  TXT/08/-",
		"Config.txt":   "CONFIG  TXT/00/lfn",
		"README":       "README     /00/-",
		"abc.d_e":      "ABC     D_E/18/-",
		"ABC.d_e":      "ABC     D_E/10/-",
		"x+y.txt":      "",
		".hidden":      "",
		"a.b.c":        "",
		"toolong.text": "",
		"ninechars":    "",
	} {
		short, lower, mixed, ok := plainShort(name)
		got := ""
		if ok {
			got = fmt.Sprintf("%s/%02x/%s", short, lower, map[bool]string{false: "-", true: "lfn"}[mixed])
		}
		if got != want {
			t.Errorf("plainShort(%q) = %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]string{
		"x+y.txt":           "X_Y.TXT",
		".hidden":           "HIDDEN.",
		"a.b.c":             "AB.C",
		"my file name.text": "MYFILENA.TEX",
		"ünïcode":           "_N_CODE.",
	} {
		base, ext := basis(name)
		if got := base + "." + ext; got != want {
			t.Errorf("basis(%q) = %q, want %q", name, got, want)
		}
	}
	// The checksum mtools wrote for "Mixed.Txt" (seen in an image mcopy made).
	if got := checksum(pack("MIXED", "TXT")); got != 0x46 {
		t.Errorf("checksum(MIXED   TXT) = %#x, want 0x46", got)
	}
}

// TestLastClusterFree: whatever the sizes, the image's last cluster is free
// (rpi-eeprom#521), and the image is no bigger than that needs: one free
// cluster, or two with 1-sector clusters when the cluster count was odd
// (the image is whole KiB, as mkfs.fat sizes them). No tools: runs in
// -short too.
func TestLastClusterFree(t *testing.T) {
	zeros := make([]byte, 70<<20+4*2048)
	for _, size := range []int{5 << 20, 40 << 20, 70 << 20} {
		for extra := range 4 {
			files := []File{{Name: "overlays/x.dtbo", Data: []byte("x")}, {Name: "big", Data: zeros[:size+extra*2048-7]}}
			w := headWriter{head: make([]byte, 256<<10)} // the boot sector and the FAT
			if _, err := Write(&w, files, Options{}); err != nil {
				t.Fatal(err)
			}
			b := readBPB(w.head)
			fat := w.head[b.reserved*sectorSize:]
			free := 0
			for c := b.clusters + 1; binary.LittleEndian.Uint16(fat[2*c:]) == 0; c-- {
				free++
			}
			if free < 1 || free > 1 && b.spc > 1 || free > 2 {
				t.Errorf("%d+%d bytes, %d sectors per cluster: %d free clusters at the end", size, extra*2048-7, b.spc, free)
			}
		}
	}
}
