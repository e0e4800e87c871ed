// Package growpart grows a disk's last partition to the end of the disk,
// as cloud-utils' growpart does, after a disk image smaller than the disk
// was written to it. The file system in the partition is not touched: the
// installed OS grows it at first boot (Raspberry Pi OS and systemd's
// x-systemd.growfs, cloud-init's resizefs).
//
// What changes is what cloud-utils' growpart (its sfdisk resizer) would
// change, and the tests check it against the real one:
//
//   - The partition grown is the last one on the disk (the highest start).
//   - It ends 34 sectors before the disk's end, on MBR too (room for a
//     GPT's backup header and array, should the disk be converted), and
//     never past the next partition's start.
//   - A partition that could grow by less than 1 MiB is left alone, and
//     so is the whole table (a GPT's backup header stays where it is).
//   - On GPT the backup header and partition array move to the disk's end
//     and the protective MBR covers the disk.
//   - On MBR, when the last partition is a logical one, its extended
//     partition grows with it: what `growpart DISK EXT; growpart DISK N`
//     does (cloud-utils' growpart asked for the logical one alone fails,
//     as the logical cannot pass its extended partition's end). A primary
//     partition followed by an extended one is never grown over it.
//
// Usage:
//
//	f, _ := os.OpenFile("/dev/mmcblk0", os.O_RDWR, 0)
//	size, _ := f.Seek(0, io.SeekEnd)
//	r, err := growpart.Grow(f, size)
//	// r.Partition grew from r.OldEnd to r.NewEnd, or r.Unchanged says why not
package growpart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/u-root/u-root/pkg/mount/gpt"
)

const sector = 512

// gptSecondary is the room cloud-utils' growpart leaves at the disk's
// end, MBR or GPT: a backup GPT header and its 128-entry array.
const gptSecondary = 33

// fudge is the least growth (in sectors, 1 MiB) worth a change, as in
// cloud-utils' growpart (its FUDGE).
const fudge = (1 << 20) / sector

// maxLogical bounds the chain of extended boot records read.
const maxLogical = 256

// Disk is what Grow needs of a disk: reads and writes.
type Disk interface {
	io.ReaderAt
	io.WriterAt
}

// Result says what changed.
type Result struct {
	Table     string // "mbr" or "gpt"
	Partition int    // 1-based, as Linux numbers it (5 and up: logical)
	Container int    // the extended partition that grew with a logical one, or 0
	OldEnd    uint64 // last sector, inclusive
	NewEnd    uint64
	Unchanged string // why nothing was written, or ""
}

// Grow grows the last partition of d (size bytes) to the end of the disk.
// A partition that cannot grow is left alone (Result.Unchanged says why,
// OldEnd == NewEnd); an error means the table could not be read or written,
// or does not fit the disk.
func Grow(d Disk, size int64) (Result, error) {
	if size < 64*sector {
		return Result{}, fmt.Errorf("disk of %d bytes is too small for a partition table", size)
	}
	var mbr [sector]byte
	if _, err := d.ReadAt(mbr[:], 0); err != nil {
		return Result{}, fmt.Errorf("reading the MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return Result{}, errors.New("no partition table (no MBR signature 55 aa in the first sector)")
	}
	if mbr[446+4] == 0xee {
		return growGPT(d, size)
	}
	return growMBR(d, mbr, size)
}

// maxEnd is the last sector a partition may end on in a disk of total
// sectors, before next (the next partition's start, or total).
func maxEnd(total, next uint64) uint64 {
	end := next - 1
	if end > total-gptSecondary {
		end = total - gptSecondary - 1
	}
	return end
}

// mbrPart is one partition of an MBR disk and where its entry is.
type mbrPart struct {
	num         int
	typ         byte
	start, size uint64 // absolute, in sectors
	table       uint64 // the sector holding its entry (0: the MBR; else an EBR)
	slot        int    // its entry in that sector
}

func (p mbrPart) end() uint64 { return p.start + p.size - 1 }

func isExtended(typ byte) bool { return typ == 0x05 || typ == 0x0f || typ == 0x85 }

func entry(b []byte, slot int) (typ byte, start, size uint64) {
	e := b[446+16*slot:]
	return e[4], uint64(binary.LittleEndian.Uint32(e[8:])), uint64(binary.LittleEndian.Uint32(e[12:]))
}

// ebr is one extended boot record read: its sector and contents.
type ebr struct {
	lba uint64
	b   [sector]byte
}

// readLogical follows the chain of extended boot records of the extended
// partition ext, returning the logical partitions and the records.
func readLogical(d Disk, ext mbrPart) ([]mbrPart, []*ebr, error) {
	var parts []mbrPart
	var ebrs []*ebr
	seen := map[uint64]bool{}
	at := ext.start
	for n := 5; ; n++ {
		if n-5 >= maxLogical {
			return nil, nil, fmt.Errorf("more than %d logical partitions in extended partition %d", maxLogical, ext.num)
		}
		if seen[at] || at < ext.start || at > ext.end() {
			return nil, nil, fmt.Errorf("extended partition %d: the chain of logical partitions loops or leaves it (at sector %d)", ext.num, at)
		}
		seen[at] = true
		e := &ebr{lba: at}
		if _, err := d.ReadAt(e.b[:], int64(at)*sector); err != nil {
			return nil, nil, fmt.Errorf("reading the extended boot record at sector %d: %w", at, err)
		}
		if e.b[510] != 0x55 || e.b[511] != 0xaa {
			if n == 5 {
				return nil, nil, nil // an empty extended partition
			}
			return nil, nil, fmt.Errorf("extended partition %d: no boot record signature at sector %d", ext.num, at)
		}
		ebrs = append(ebrs, e)
		typ, start, size := entry(e.b[:], 0)
		if typ != 0 && size != 0 {
			parts = append(parts, mbrPart{num: n, typ: typ, start: at + start, size: size, table: at, slot: 0})
		}
		ntyp, nstart, _ := entry(e.b[:], 1)
		if !isExtended(ntyp) || nstart == 0 {
			return parts, ebrs, nil
		}
		at = ext.start + nstart
	}
}

func growMBR(d Disk, mbr [sector]byte, size int64) (Result, error) {
	total := uint64(size / sector)
	var parts []mbrPart
	var ext *mbrPart
	for i := 0; i < 4; i++ {
		typ, start, size := entry(mbr[:], i)
		if typ == 0 || size == 0 {
			continue
		}
		p := mbrPart{num: i + 1, typ: typ, start: start, size: size, slot: i}
		parts = append(parts, p)
		if isExtended(typ) {
			if ext != nil {
				return Result{}, fmt.Errorf("two extended partitions (%d and %d)", ext.num, p.num)
			}
			ext = &parts[len(parts)-1]
		}
	}
	var logical []mbrPart
	var ebrs []*ebr
	if ext != nil {
		var err error
		x := *ext
		if logical, ebrs, err = readLogical(d, x); err != nil {
			return Result{}, err
		}
		ext = &x
	}
	all := append(append([]mbrPart(nil), parts...), logical...)
	if len(all) == 0 {
		return Result{}, errors.New("the MBR has no partition")
	}
	last := all[0]
	for _, p := range all[1:] {
		if p.start > last.start {
			last = p
		}
	}
	for _, p := range all {
		if p.end() >= total {
			return Result{Table: "mbr", Partition: p.num, OldEnd: p.end(), NewEnd: p.end()},
				fmt.Errorf("partition %d ends at sector %d, past the disk's end (%d sectors): the image is larger than the disk", p.num, p.end(), total)
		}
	}
	r := Result{Table: "mbr", Partition: last.num, OldEnd: last.end(), NewEnd: last.end()}
	if isExtended(last.typ) {
		r.Unchanged = fmt.Sprintf("the last partition, %d, is an empty extended partition", last.num)
		return r, nil
	}
	// The MBR's limit: 2 TiB with 512-byte sectors.
	limit := func(p mbrPart, end uint64) uint64 {
		if end-p.start+1 > 0xffffffff {
			end = p.start + 0xffffffff - 1
		}
		return end
	}
	newEnd := limit(last, maxEnd(total, total))
	var extEnd uint64
	if last.num > 4 {
		// A logical partition: its extended partition grows first, as
		// far as it can, and bounds it.
		r.Container = ext.num
		extEnd = ext.end()
		if e := limit(*ext, maxEnd(total, total)); e >= extEnd+fudge {
			extEnd = e
		}
		if newEnd > extEnd {
			newEnd = extEnd
		}
	}
	growExt := last.num > 4 && extEnd != ext.end()
	if newEnd < last.end()+fudge {
		if !growExt {
			r.Unchanged = growthNote(last, newEnd)
			return r, nil
		}
		newEnd = last.end() // the extended partition alone grows
	}
	r.NewEnd = newEnd
	if growExt {
		binary.LittleEndian.PutUint32(mbr[446+16*ext.slot+12:], uint32(extEnd-ext.start+1))
		if _, err := d.WriteAt(mbr[:], 0); err != nil {
			return r, fmt.Errorf("writing the MBR: %w", err)
		}
	}
	if newEnd == last.end() {
		return r, nil
	}
	if last.num <= 4 {
		binary.LittleEndian.PutUint32(mbr[446+16*last.slot+12:], uint32(newEnd-last.start+1))
		if _, err := d.WriteAt(mbr[:], 0); err != nil {
			return r, fmt.Errorf("writing the MBR: %w", err)
		}
		return r, nil
	}
	// The logical partition's own entry, then the previous record's link
	// to its record, which spans that record and the partition.
	for i, e := range ebrs {
		if e.lba != last.table {
			continue
		}
		binary.LittleEndian.PutUint32(e.b[446+12:], uint32(newEnd-last.start+1))
		if _, err := d.WriteAt(e.b[:], int64(e.lba)*sector); err != nil {
			return r, fmt.Errorf("writing the extended boot record at sector %d: %w", e.lba, err)
		}
		if i > 0 {
			p := ebrs[i-1]
			binary.LittleEndian.PutUint32(p.b[446+16+12:], uint32(newEnd-e.lba+1))
			if _, err := d.WriteAt(p.b[:], int64(p.lba)*sector); err != nil {
				return r, fmt.Errorf("writing the extended boot record at sector %d: %w", p.lba, err)
			}
		}
	}
	return r, nil
}

func growthNote(p mbrPart, maxEnd uint64) string {
	if maxEnd <= p.end() {
		return fmt.Sprintf("partition %d ends at sector %d: it cannot grow", p.num, p.end())
	}
	return fmt.Sprintf("partition %d could grow by %d sectors only (less than 1 MiB)", p.num, maxEnd-p.end())
}

func growGPT(d Disk, size int64) (Result, error) {
	pt, err := gpt.New(d)
	if err != nil && (pt == nil || pt.Primary == nil) {
		return Result{}, fmt.Errorf("reading the GPT: %w", err)
	}
	p := pt.Primary
	total := uint64(size / sector)
	arraySectors := (uint64(p.NPart)*uint64(p.PartSize) + sector - 1) / sector
	newBackup := total - 1
	newLastUsable := newBackup - arraySectors - 1
	last := -1
	for i, part := range p.Parts {
		if part.FirstLBA == 0 && part.LastLBA == 0 {
			continue
		}
		if last < 0 || part.FirstLBA > p.Parts[last].FirstLBA {
			last = i
		}
	}
	if last < 0 {
		return Result{}, errors.New("the GPT has no partition")
	}
	old := p.Parts[last].LastLBA
	r := Result{Table: "gpt", Partition: last + 1, OldEnd: old, NewEnd: old}
	if old > newLastUsable {
		return r, fmt.Errorf("partition %d ends at sector %d, past the disk's usable end (%d): the image is larger than the disk", last+1, r.OldEnd, newLastUsable)
	}
	end := maxEnd(total, total)
	if end > newLastUsable {
		end = newLastUsable
	}
	if end < old+fudge {
		r.Unchanged = growthNote(mbrPart{num: last + 1, start: p.Parts[last].FirstLBA, size: old - p.Parts[last].FirstLBA + 1}, end)
		return r, nil
	}
	p.Parts[last].LastLBA = end
	r.NewEnd = end
	p.BackupLBA = newBackup
	p.LastLBA = newLastUsable
	b := &gpt.GPT{Header: p.Header, Parts: append([]gpt.Part(nil), p.Parts...)}
	b.CurrentLBA, b.BackupLBA = newBackup, p.CurrentLBA
	b.PartStart = newBackup - arraySectors
	pt.Backup = b
	// The protective MBR covers the disk.
	m := pt.MasterBootRecord
	n := total - 1
	if n > 0xffffffff {
		n = 0xffffffff
	}
	binary.LittleEndian.PutUint32(m[446+12:], uint32(n))
	if err := gpt.Write(d, pt); err != nil {
		return r, fmt.Errorf("writing the GPT: %w", err)
	}
	return r, nil
}
