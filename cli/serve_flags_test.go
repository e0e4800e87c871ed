package cli

import (
	"io"
	"testing"

	"github.com/ramboot/ramboot/site"
)

// The issue-18 bounds that have no listener of their own are serve flags:
// set, they reach the server's fields; unset, the defaults are in force.
func TestServeBoundFlags(t *testing.T) {
	fs, o := serveFlags(io.Discard)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if o.MaxDeclined != 0 || o.StateMaxUnlisted != site.MaxUnlistedRecords {
		t.Errorf("defaults: --dhcp-max-declined %d (want 0: a quarter of the range), --state-max-unlisted %d (want %d)",
			o.MaxDeclined, o.StateMaxUnlisted, site.MaxUnlistedRecords)
	}
	fs, o = serveFlags(io.Discard)
	if err := fs.Parse([]string{"--dhcp-max-declined", "7", "--state-max-unlisted", "9"}); err != nil {
		t.Fatal(err)
	}
	if o.MaxDeclined != 7 || o.StateMaxUnlisted != 9 {
		t.Errorf("--dhcp-max-declined 7 --state-max-unlisted 9 gave %d and %d", o.MaxDeclined, o.StateMaxUnlisted)
	}
}
