// Package growpart grows a disk's last partition to the end of the disk,
// as cloud-utils' growpart does, after a disk image smaller than the disk
// was written to it. MBR and GPT tables are handled; for GPT the backup
// header and partition array move to the disk's end. The file system in
// the partition is not touched: the installed OS grows it at first boot
// (Raspberry Pi OS and systemd's x-systemd.growfs, cloud-init's resizefs).
package growpart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/u-root/u-root/pkg/mount/gpt"
)

const sector = 512

// Disk is what Grow needs of a disk: reads, writes and its size.
type Disk interface {
	io.ReaderAt
	io.WriterAt
}

// Result says what changed.
type Result struct {
	Table     string // "mbr" or "gpt"
	Partition int    // 1-based
	OldEnd    uint64 // last sector, inclusive
	NewEnd    uint64
}

// Grow grows the last partition of d (size bytes) to the end of the disk.
// A partition already at the end is left alone (Result.OldEnd == NewEnd).
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

func growMBR(d Disk, mbr [sector]byte, size int64) (Result, error) {
	total := uint64(size / sector)
	last, lastStart := -1, uint64(0)
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i:]
		typ := e[4]
		start := uint64(binary.LittleEndian.Uint32(e[8:]))
		if typ == 0 || typ == 0x05 || typ == 0x0f || typ == 0x85 {
			continue // empty or extended: logical partitions are not grown
		}
		if last < 0 || start > lastStart {
			last, lastStart = i, start
		}
	}
	if last < 0 {
		return Result{}, errors.New("the MBR has no primary partition")
	}
	e := mbr[446+16*last:]
	oldSize := uint64(binary.LittleEndian.Uint32(e[12:]))
	r := Result{Table: "mbr", Partition: last + 1, OldEnd: lastStart + oldSize - 1}
	newSize := total - lastStart
	if newSize > 0xffffffff {
		newSize = 0xffffffff // MBR's limit: 2 TiB with 512-byte sectors
	}
	if lastStart+oldSize > total {
		return r, fmt.Errorf("partition %d ends at sector %d, past the disk's end (%d sectors): the image is larger than the disk", last+1, r.OldEnd, total)
	}
	r.NewEnd = lastStart + newSize - 1
	if newSize <= oldSize {
		r.NewEnd = r.OldEnd
		return r, nil
	}
	binary.LittleEndian.PutUint32(e[12:], uint32(newSize))
	if _, err := d.WriteAt(mbr[:], 0); err != nil {
		return r, fmt.Errorf("writing the MBR: %w", err)
	}
	return r, nil
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
	r := Result{Table: "gpt", Partition: last + 1, OldEnd: p.Parts[last].LastLBA}
	if p.Parts[last].LastLBA > newLastUsable {
		return r, fmt.Errorf("partition %d ends at sector %d, past the disk's usable end (%d): the image is larger than the disk", last+1, r.OldEnd, newLastUsable)
	}
	p.Parts[last].LastLBA = newLastUsable
	r.NewEnd = newLastUsable
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
