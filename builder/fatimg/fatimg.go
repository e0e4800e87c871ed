// Package fatimg writes FAT16 filesystem images, such as the boot.img
// that a Raspberry Pi 4 or 5 bootloader downloads over HTTP and uses as
// a ramdisk. It only writes: it lays out a given set of files once and
// never reads or modifies an image.
//
// The layout follows upstream's rpi-make-boot-image, which runs
// `mkfs.fat -f 1 -g 1/1 -S 512 -r 256` and then mcopy: no partition table,
// 512-byte sectors, one FAT, 256 root directory entries, VFAT long file
// names, and lowercase 8.3 names stored with the case flags as mcopy does.
// Unlike upstream, which forces 1-sector clusters and so gets a FAT32 with
// too few clusters above about 32 MiB, the image is always FAT16: the
// cluster size is the smallest of 1, 2, 4, 8 or 16 sectors that keeps the
// cluster count at most 65 508, and a small tree is padded to at least
// 4 101 clusters (about 2 MiB), so that no reader takes it for FAT12 (both
// bounds are 16 inside fatgen103's). The reserved sectors, FAT length and
// cluster count follow from the total size by mkfs.fat's own formula, so an
// empty image equals `mkfs.fat --invariant` byte for byte outside the OEM
// name and the boot code. The last cluster is always free: bootloaders
// before January 2024 mishandled a file that used it (rpi-eeprom#521).
//
// The output is reproducible: entries are sorted, every time stamp is
// Options.ModTime, and the volume ID is Options.VolumeID or derived from the
// content. Nothing reads the clock or the environment.
//
// Usage:
//
//	img, err := fatimg.Build([]fatimg.File{
//		{Name: "config.txt", Data: config},
//		{Name: "kernel8.img", Src: "/path/to/Image"},
//		{Name: "overlays/disable-bt.dtbo", Data: dtbo},
//	}, fatimg.Options{
//		Label:   "BOOT",
//		ModTime: time.Unix(sourceDateEpoch, 0),
//		MaxSize: 128 << 20, // the bootloader's ramdisk limit
//	})
package fatimg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// File is one file of the image.
type File struct {
	// Name is the path inside the image, with / between directories
	// ("overlays/foo.dtbo"). Directories are created as needed.
	Name string
	// Data is the content, unless Src is set.
	Data []byte
	// Src is a local file to copy instead of Data. Write reads it twice:
	// once for the volume ID (unless Options.VolumeID is set), once to copy it.
	Src string
}

// Options shape the image. The zero value is valid.
type Options struct {
	// Label is the volume label: up to 11 characters of A-Z, 0-9, space
	// and !#$%&'()-@^_`{}~; lowercase letters are uppercased. Empty means
	// none ("NO NAME" in the boot sector).
	Label string
	// ModTime is every time stamp in the image, in UTC with 2-second
	// resolution, clamped to 1980..2107. The caller takes it from
	// SOURCE_DATE_EPOCH; the zero Time gives 1980-01-01 00:00:00.
	ModTime time.Time
	// VolumeID is the serial number; 0 derives it from the label, ModTime
	// and the files' names and contents.
	VolumeID uint32
	// MinFree is how many bytes stay free besides the one free cluster
	// that every image keeps at its end.
	MinFree int64
	// MinSize is the least size of the image in bytes.
	MinSize int64
	// MaxSize, if not 0, is the largest image allowed; a bigger one is an
	// error that wraps ErrTooLarge.
	MaxSize int64
}

// ErrTooLarge is wrapped by the error for an image over Options.MaxSize or
// over what FAT16 with 16-sector clusters holds (about 511 MiB).
var ErrTooLarge = errors.New("image too large")

const (
	sectorSize  = 512
	rootEntries = 256
	rootSectors = rootEntries * 32 / sectorSize
	// FAT16 means 4085..65524 clusters (Microsoft's fatgen103); stay 16
	// away from both ends, as it advises.
	minClusters = 4085 + 16
	maxClusters = 65524 - 16
	maxSPC      = 16 // larger clusters would change the root directory's alignment

	attrDir, attrArchive, attrLabel, attrLFN = 0x10, 0x20, 0x08, 0x0f
)

// Build returns the image of files.
func Build(files []File, o Options) ([]byte, error) {
	var b bytes.Buffer
	if _, err := Write(&b, files, o); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Write writes the image of files to w and returns its size. Every check
// (names, sizes, limits) happens before the first byte is written; after
// that only reading a Src file or w itself can fail.
func Write(w io.Writer, files []File, o Options) (int64, error) {
	label, err := volumeLabel(o.Label)
	if err != nil {
		return 0, err
	}
	root, err := newTree(files)
	if err != nil {
		return 0, err
	}
	n := root.entryCount()
	if label != "" {
		n++
	}
	if n > rootEntries {
		return 0, fmt.Errorf("fatimg: the root directory needs %d entries (a long name takes one more per 13 characters), more than its %d: move files into a subdirectory", n, rootEntries)
	}
	g, err := chooseGeometry(root, o)
	if err != nil {
		return 0, err
	}
	// Clusters from 2 on: the subdirectories, then the files, in path order.
	dirs, regular := root.walk()
	allocated := append(append([]*node(nil), dirs...), regular...)
	next := uint32(2)
	for _, n := range allocated {
		if c := g.clustersFor(n.size); c > 0 {
			n.first, next = next, next+c
		}
	}
	id := o.VolumeID
	if id == 0 {
		if id, err = volumeID(label, o.ModTime, regular); err != nil {
			return 0, err
		}
	}
	date, tm := dosTime(o.ModTime)
	out := &writer{w: w}

	out.write(g.bootSector(label, id))
	out.zeros(int64(g.reserved-1) * sectorSize)

	fat := make([]byte, g.fatLen*sectorSize)
	binary.LittleEndian.PutUint32(fat, 0xfffffff8) // entries 0 and 1: media byte, end of chain
	for c := uint32(2); c < next; c++ {
		binary.LittleEndian.PutUint16(fat[2*c:], uint16(c+1))
	}
	for _, n := range allocated {
		if n.first != 0 {
			binary.LittleEndian.PutUint16(fat[2*(n.first+g.clustersFor(n.size)-1):], 0xffff)
		}
	}
	out.write(fat)

	rootDir := make([]byte, rootSectors*sectorSize)
	var labelEntry []byte
	if label != "" {
		labelEntry = dirent([11]byte([]byte(label)), attrLabel, 0, 0, 0, date, tm)
	}
	copy(rootDir, append(labelEntry, root.entries(date, tm)...))
	out.write(rootDir)

	clusterSize := int64(g.spc) * sectorSize
	for _, d := range dirs {
		b := append(dirent(dotName("."), attrDir, 0, uint16(d.first), 0, date, tm),
			dirent(dotName(".."), attrDir, 0, uint16(d.parent.first), 0, date, tm)...)
		b = append(b, d.entries(date, tm)...)
		out.write(b)
		out.zeros(roundUp(int64(len(b)), clusterSize) - int64(len(b)))
	}
	for _, f := range regular {
		if f.file.Src != "" {
			out.copyFile(f.file.Src, f.size)
		} else {
			out.write(f.file.Data)
		}
		out.zeros(roundUp(f.size, clusterSize) - f.size)
	}
	out.zeros(int64(g.total)*sectorSize - out.n)
	if out.err != nil {
		return out.n, fmt.Errorf("fatimg: %w", out.err)
	}
	return out.n, nil
}

// geometry is a FAT16 layout of total sectors.
type geometry struct {
	total, spc, reserved, fatLen, clusters uint32
}

// layout computes the layout of total sectors with spc sectors per cluster
// as mkfs.fat 4.2 does for one FAT, 256 root entries and the given -s: its
// reserved sectors, root directory and FAT are aligned to the cluster size
// above 8192 sectors.
func layout(total, spc uint32) (g geometry, ok bool) {
	align := func(n uint32) uint32 {
		if total <= 8192 {
			return n
		}
		return (n + spc - 1) / spc * spc
	}
	g = geometry{total: total, spc: spc, reserved: align(1)}
	if total < g.reserved+align(rootSectors)+2 {
		return g, false
	}
	fatData := uint64(total - g.reserved - align(rootSectors))
	n := (fatData*sectorSize + 4) / (uint64(spc)*sectorSize + 2)
	g.fatLen = align(uint32((2*(n+2) + sectorSize - 1) / sectorSize))
	if uint64(g.fatLen) >= fatData {
		return g, false
	}
	g.clusters = uint32((fatData - uint64(g.fatLen)) / uint64(spc))
	return g, g.clusters+2 <= g.fatLen*sectorSize/2 &&
		g.clusters >= minClusters && g.clusters <= maxClusters
}

func (g geometry) clustersFor(size int64) uint32 {
	return uint32(roundUp(size, int64(g.spc)*sectorSize) / (int64(g.spc) * sectorSize))
}

// chooseGeometry returns the smallest layout that holds root's tree with
// one free cluster and o.MinFree bytes to spare, and is at least o.MinSize.
func chooseGeometry(root *node, o Options) (geometry, error) {
	dirs, regular := root.walk()
	var fileBytes int64
	for _, f := range regular {
		fileBytes += f.size
	}
	minTotal := uint32(min(roundUp(max(o.MinSize, 0), sectorSize)/sectorSize, 1<<32-2))
	for spc := uint32(1); spc <= maxSPC; spc *= 2 {
		unit := geometry{spc: spc}
		need := int64(1) + int64(unit.clustersFor(max(o.MinFree, 0)))
		for _, n := range append(append([]*node(nil), dirs...), regular...) {
			need += int64(unit.clustersFor(n.size))
		}
		if need > maxClusters {
			continue
		}
		want := uint32(max(need, minClusters))
		total := max(spc+rootSectors+(want+2)/256+want*spc, minTotal)
		for total += total & 1; ; total += 2 { // whole KiB, as mkfs.fat takes
			g, ok := layout(total, spc)
			if g.clusters > maxClusters {
				break
			}
			if ok && int64(g.clusters) >= need {
				if o.MaxSize > 0 && int64(total)*sectorSize > o.MaxSize {
					return g, fmt.Errorf("fatimg: %w: the image needs %d bytes (%.1f MiB) for %d files of %d bytes%s; the limit is %d bytes (%.1f MiB)",
						ErrTooLarge, int64(total)*sectorSize, mib(int64(total)*sectorSize), len(regular), fileBytes,
						largest(regular), o.MaxSize, mib(o.MaxSize))
				}
				return g, nil
			}
		}
	}
	return geometry{}, fmt.Errorf("fatimg: %w: %d files of %d bytes (%.1f MiB)%s, with MinSize %d and MinFree %d, need more than FAT16 with %d-byte clusters holds",
		ErrTooLarge, len(regular), fileBytes, mib(fileBytes), largest(regular), o.MinSize, o.MinFree, maxSPC*sectorSize)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// largest names the three biggest files, for the size errors.
func largest(files []*node) string {
	s := append([]*node(nil), files...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].size > s[j].size })
	var b strings.Builder
	for i, f := range s[:min(3, len(s))] {
		if i == 0 {
			b.WriteString(" (largest: ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d bytes", f.path, f.size)
	}
	if len(s) > 0 {
		b.WriteString(")")
	}
	return b.String()
}

func (g geometry) bootSector(label string, id uint32) []byte {
	b := make([]byte, sectorSize)
	copy(b, "\xeb\x3c\x90MSWIN4.1") // jump to 0x3e; the OEM name fatgen103 recommends
	le := binary.LittleEndian
	le.PutUint16(b[11:], sectorSize)
	b[13] = byte(g.spc)
	le.PutUint16(b[14:], uint16(g.reserved))
	b[16] = 1 // FATs
	le.PutUint16(b[17:], rootEntries)
	if g.total < 1<<16 {
		le.PutUint16(b[19:], uint16(g.total))
	} else {
		le.PutUint32(b[32:], g.total)
	}
	b[21] = 0xf8 // media: fixed disk
	le.PutUint16(b[22:], uint16(g.fatLen))
	le.PutUint16(b[24:], 1) // sectors per track, as mkfs.fat -g 1/1
	le.PutUint16(b[26:], 1) // heads
	b[36] = 0x80            // drive number
	b[38] = 0x29            // extended boot signature: the next three fields exist
	le.PutUint32(b[39:], id)
	copy(b[43:54], "NO NAME    ")
	if label != "" {
		copy(b[43:54], label)
	}
	copy(b[54:62], "FAT16   ")
	copy(b[62:], "\xcd\x18\xeb\xfe") // boot code: int 18h (try the next boot device), then loop
	b[510], b[511] = 0x55, 0xaa
	return b
}

// volumeLabel returns label uppercased and padded to 11 bytes, or "".
func volumeLabel(label string) (string, error) {
	if label == "" {
		return "", nil
	}
	up := strings.ToUpper(label)
	if len(up) > 11 || up[0] == ' ' || strings.IndexFunc(up, func(r rune) bool { return r != ' ' && !shortChar(r) }) >= 0 {
		return "", fmt.Errorf("fatimg: volume label %q: use up to 11 characters of A-Z, 0-9, space (not first) and !#$%%&'()-@^_`{}~", label)
	}
	return up + strings.Repeat(" ", 11-len(up)), nil
}

// dosTime returns t as a FAT date and time.
func dosTime(t time.Time) (date, tm uint16) {
	t = t.UTC()
	if lo := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC); t.Before(lo) {
		t = lo
	}
	if hi := time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC); t.After(hi) {
		t = hi
	}
	return uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day()),
		uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
}

// volumeID is the first four bytes of a SHA-256 over the label, the time
// and every file's path, size and content.
func volumeID(label string, t time.Time, files []*node) (uint32, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%q %d\n", label, t.Unix())
	for _, f := range files {
		fmt.Fprintf(h, "%q %d\n", f.path, f.size)
		if f.file.Src == "" {
			h.Write(f.file.Data)
			continue
		}
		r, err := os.Open(f.file.Src)
		if err != nil {
			return 0, fmt.Errorf("fatimg: %w", err)
		}
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return 0, fmt.Errorf("fatimg: %s: %w", f.file.Src, err)
		}
	}
	return binary.LittleEndian.Uint32(h.Sum(nil)), nil
}

// node is a file or directory of the image.
type node struct {
	name, path string
	short      [11]byte
	lower      byte     // NT case flags: 0x08 base, 0x10 extension shown in lowercase
	lfn        []uint16 // the long name, nil if the short name says it all
	dir        bool
	kids       []*node
	byKey      map[string]*node // kids by upper-cased name: FAT names ignore case
	parent     *node
	file       *File
	size       int64 // bytes of content, or of the directory's entries
	first      uint32
}

func newTree(files []File) (*node, error) {
	root := &node{dir: true, byKey: map[string]*node{}}
	for i := range files {
		f := &files[i]
		parts := strings.Split(f.Name, "/")
		d := root
		for j, name := range parts {
			if err := checkName(name); err != nil {
				return nil, fmt.Errorf("fatimg: file name %q: %w", f.Name, err)
			}
			isDir := j < len(parts)-1
			n := d.byKey[strings.ToUpper(name)]
			if n == nil {
				n = &node{name: name, path: strings.Join(parts[:j+1], "/"), dir: isDir, parent: d}
				if isDir {
					n.byKey = map[string]*node{}
				}
				d.byKey[strings.ToUpper(name)] = n
				d.kids = append(d.kids, n)
			} else if !isDir || !n.dir {
				return nil, fmt.Errorf("fatimg: %q and another file or directory have the same FAT name %q (names ignore case)", f.Name, n.path)
			}
			d = n
		}
		d.file = f
		d.size = int64(len(f.Data))
		if f.Src != "" {
			if len(f.Data) > 0 {
				return nil, fmt.Errorf("fatimg: %q has both Data and Src", f.Name)
			}
			st, err := os.Stat(f.Src)
			if err != nil {
				return nil, fmt.Errorf("fatimg: %w", err)
			}
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("fatimg: %q: %s is not a regular file", f.Name, f.Src)
			}
			d.size = st.Size()
		}
	}
	dirs, _ := root.walk()
	if err := root.nameKids(); err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if err := d.nameKids(); err != nil {
			return nil, err
		}
		d.size = int64(32 * (2 + d.entryCount())) // with . and ..
	}
	return root, nil
}

// checkName accepts what Windows and Linux vfat accept in a long name.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return errors.New("empty, . or .. path element")
	case !utf8.ValidString(name):
		return errors.New("not UTF-8")
	case strings.ContainsAny(name, `"*:<>?\|`) || strings.IndexFunc(name, func(r rune) bool { return r < 0x20 }) >= 0:
		return errors.New(`control characters and "*:<>?\| are not allowed in FAT names`)
	case strings.HasPrefix(name, " ") || strings.HasSuffix(name, " ") || strings.HasSuffix(name, "."):
		return errors.New("a FAT name cannot begin with a space or end with a space or a dot")
	case len(utf16.Encode([]rune(name))) > 255:
		return errors.New("longer than 255 UTF-16 characters")
	}
	return nil
}

// walk returns the directories below d and the files, each in path order.
func (d *node) walk() (dirs, files []*node) {
	for _, k := range d.kids {
		if k.dir {
			dirs = append(dirs, k)
			sub, subFiles := k.walk()
			dirs, files = append(dirs, sub...), append(files, subFiles...)
		} else {
			files = append(files, k)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].path < dirs[j].path })
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return dirs, files
}

// nameKids sorts d's entries and gives each its short name: first the
// names that are already 8.3, then in order the others, as BASE~N.EXT with
// the smallest free N.
func (d *node) nameKids() error {
	sort.Slice(d.kids, func(i, j int) bool { return d.kids[i].name < d.kids[j].name })
	used := map[[11]byte]bool{}
	var rest []*node
	for _, k := range d.kids {
		short, lower, mixed, ok := plainShort(k.name)
		if !ok {
			rest = append(rest, k)
			continue
		}
		k.short, k.lower, used[short] = short, lower, true
		if mixed {
			k.lfn = utf16.Encode([]rune(k.name))
		}
	}
	for _, k := range rest {
		base, ext := basis(k.name)
		for n := 1; ; n++ {
			tail := "~" + strconv.Itoa(n)
			if len(tail) > 7 {
				return fmt.Errorf("fatimg: no free short name for %q", k.path)
			}
			s := pack(base[:min(len(base), 8-len(tail))]+tail, ext)
			if !used[s] {
				k.short, used[s] = s, true
				break
			}
		}
		k.lfn = utf16.Encode([]rune(k.name))
	}
	return nil
}

// shortChar reports whether r may appear in a short name (uppercase).
func shortChar(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'()-@^_`{}~", r)
}

// plainShort returns the 8.3 name of name if it is one up to case: the case
// flags if each part is all lower or all upper case, else mixed (it needs a
// long name entry, but no ~N tail).
func plainShort(name string) (short [11]byte, lower byte, mixed, ok bool) {
	base, ext, dot := strings.Cut(name, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || dot && ext == "" || strings.Contains(ext, ".") {
		return short, 0, false, false
	}
	for i, part := range []string{base, ext} {
		up, lo := false, false
		for _, r := range part {
			lo = lo || r >= 'a' && r <= 'z'
			up = up || r >= 'A' && r <= 'Z'
			if !shortChar(r) && !(r >= 'a' && r <= 'z') {
				return short, 0, false, false
			}
		}
		if lo && up {
			mixed = true
		} else if lo {
			lower |= 0x08 << i
		}
	}
	if mixed {
		lower = 0
	}
	return pack(strings.ToUpper(base), strings.ToUpper(ext)), lower, mixed, true
}

// basis returns the base (up to 8) and extension (up to 3) from which a
// short name with a ~N tail is made, as Linux vfat does: uppercase, spaces
// and other dots than the last dropped, other characters that a short name
// cannot hold turned into _.
func basis(name string) (base, ext string) {
	conv := func(s string, n int) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			switch {
			case b.Len() == n:
				return b.String()
			case r == ' ' || r == '.':
			case r < utf8.RuneSelf && shortChar(r):
				b.WriteRune(r)
			default:
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	trimmed := strings.TrimLeft(name, ". ")
	if i := strings.LastIndexByte(trimmed, '.'); i > 0 {
		base, ext = conv(trimmed[:i], 8), conv(trimmed[i+1:], 3)
	} else {
		base = conv(trimmed, 8)
	}
	if base == "" {
		base = "_"
	}
	return base, ext
}

func pack(base, ext string) (s [11]byte) {
	copy(s[:], "           ")
	copy(s[:8], base)
	copy(s[8:], ext)
	return s
}

func dotName(s string) [11]byte { return pack(s, "") }

// entryCount is the number of 32-byte entries of d's children.
func (d *node) entryCount() int {
	n := 0
	for _, k := range d.kids {
		n += 1 + (len(k.lfn)+12)/13
	}
	return n
}

// entries returns the directory entries of d's children.
func (d *node) entries(date, tm uint16) []byte {
	var b []byte
	for _, k := range d.kids {
		if k.lfn != nil {
			b = append(b, lfnEntries(k.lfn, checksum(k.short))...)
		}
		attr, size := byte(attrArchive), uint32(k.size)
		if k.dir {
			attr, size = attrDir, 0
		}
		b = append(b, dirent(k.short, attr, k.lower, uint16(k.first), size, date, tm)...)
	}
	return b
}

func dirent(name [11]byte, attr, lower byte, cluster uint16, size uint32, date, tm uint16) []byte {
	b := make([]byte, 32)
	copy(b, name[:])
	b[11], b[12] = attr, lower
	le := binary.LittleEndian
	le.PutUint16(b[14:], tm) // created
	le.PutUint16(b[16:], date)
	le.PutUint16(b[18:], date) // accessed
	le.PutUint16(b[22:], tm)   // modified
	le.PutUint16(b[24:], date)
	le.PutUint16(b[26:], cluster)
	le.PutUint32(b[28:], size)
	return b
}

// lfnEntries returns the VFAT long name entries for name, last part first.
func lfnEntries(name []uint16, sum byte) []byte {
	n := (len(name) + 12) / 13
	padded := make([]uint16, 13*n)
	for i := range padded {
		switch {
		case i < len(name):
			padded[i] = name[i]
		case i == len(name):
			padded[i] = 0
		default:
			padded[i] = 0xffff
		}
	}
	var b []byte
	for seq := n; seq >= 1; seq-- {
		e := make([]byte, 32)
		e[0] = byte(seq)
		if seq == n {
			e[0] |= 0x40
		}
		e[11], e[13] = attrLFN, sum
		for i, c := range padded[(seq-1)*13 : seq*13] {
			off := []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}[i]
			binary.LittleEndian.PutUint16(e[off:], c)
		}
		b = append(b, e...)
	}
	return b
}

func checksum(short [11]byte) (sum byte) {
	for _, c := range short {
		sum = (sum>>1 | sum<<7) + c
	}
	return sum
}

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// writer counts what it writes and keeps the first error.
type writer struct {
	w   io.Writer
	n   int64
	err error
}

var zeroBlock [64 << 10]byte

func (w *writer) write(p []byte) { w.Write(p) }

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	w.err = err
	return n, err
}

func (w *writer) zeros(n int64) {
	for n > 0 && w.err == nil {
		c := min(n, int64(len(zeroBlock)))
		w.write(zeroBlock[:c])
		n -= c
	}
}

// copyFile copies src, which must still be size bytes long.
func (w *writer) copyFile(src string, size int64) {
	if w.err != nil {
		return
	}
	f, err := os.Open(src)
	if err != nil {
		w.err = err
		return
	}
	defer f.Close()
	start := w.n
	if _, err := io.Copy(w, io.LimitReader(f, size)); err != nil && w.err == nil {
		w.err = fmt.Errorf("%s: %w", src, err)
	}
	if w.err == nil && w.n-start != size {
		w.err = fmt.Errorf("%s: changed while the image was written (was %d bytes, read %d)", src, size, w.n-start)
	}
	if n, _ := f.Read(make([]byte, 1)); w.err == nil && n > 0 {
		w.err = fmt.Errorf("%s: grew while the image was written (was %d bytes)", src, size)
	}
}
