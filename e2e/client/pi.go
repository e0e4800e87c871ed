package client

import (
	"testing"

	"github.com/ramboot/ramboot/boards"
)

// PiFetched is what board's bootloader fetches over TFTP after its size
// probe, in order: the profile's `fetched` list (boards/<board>.yaml),
// the one the builder's manifest and `make bench` count too. For rpi4:
// config.txt, start4cd.elf, fixup4cd.dat, bl31.bin, the DTB, cmdline.txt,
// rootfs.cpio.gz, Image.
func PiFetched(t testing.TB, board string) []string {
	t.Helper()
	b, err := boards.Lookup(board)
	if err != nil {
		t.Fatalf("board %s: %v", board, err)
	}
	if len(b.Fetched) == 0 {
		t.Fatalf("board %s: its profile (%s) lists no fetched files", board, b.Source)
	}
	return b.Fetched
}
