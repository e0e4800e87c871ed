package tftp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *request
	}{
		{"plain", "\x00\x01start4.elf\x00octet\x00",
			&request{Op: opRRQ, Filename: "start4.elf", Mode: "octet"}},
		// What a Pi 4 sends (#74): tsize 0 and blksize 1024.
		{"pi4", "\x00\x019ffefdef/start4.elf\x00octet\x00tsize\x000\x00blksize\x001024\x00",
			&request{Op: opRRQ, Filename: "9ffefdef/start4.elf", Mode: "octet",
				Options: []option{{"tsize", "0"}, {"blksize", "1024"}}}},
		{"wrq", "\x00\x02x\x00octet\x00",
			&request{Op: opWRQ, Filename: "x", Mode: "octet"}},
		{"mode and option names are case-insensitive", "\x00\x01x\x00NetASCII\x00BlkSize\x001024\x00",
			&request{Op: opRRQ, Filename: "x", Mode: "netascii", Options: []option{{"blksize", "1024"}}}},
		{"missing final NUL", "\x00\x01x\x00octet",
			&request{Op: opRRQ, Filename: "x", Mode: "octet"}},
		{"missing NUL after last value", "\x00\x01x\x00octet\x00blksize\x00512",
			&request{Op: opRRQ, Filename: "x", Mode: "octet", Options: []option{{"blksize", "512"}}}},
		{"option name without value", "\x00\x01x\x00octet\x00tsize\x000\x00blksize\x00",
			&request{Op: opRRQ, Filename: "x", Mode: "octet", Options: []option{{"tsize", "0"}}}},
		{"repeated option keeps the first", "\x00\x01x\x00octet\x00blksize\x00512\x00BLKSIZE\x001024\x00",
			&request{Op: opRRQ, Filename: "x", Mode: "octet", Options: []option{{"blksize", "512"}}}},
		{"empty option value", "\x00\x01x\x00octet\x00multicast\x00\x00",
			&request{Op: opRRQ, Filename: "x", Mode: "octet", Options: []option{{"multicast", ""}}}},
		{"empty", "", nil},
		{"one byte", "\x00", nil},
		{"opcode only", "\x00\x01", nil},
		{"no mode", "\x00\x01x\x00", nil},
		{"empty filename", "\x00\x01\x00octet\x00", nil},
		{"mail mode", "\x00\x01x\x00mail\x00", nil},
		{"unknown mode", "\x00\x01x\x00binary\x00", nil},
		{"ACK", "\x00\x04\x00\x01", nil},
		{"opcode 0x0101", "\x01\x01x\x00octet\x00", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest([]byte(tt.in))
			if tt.want == nil {
				if err == nil || !errors.Is(err, errMalformed) {
					t.Fatalf("got %+v, %v; want errMalformed", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// Golden wire bytes for what the server sends.
func TestSerialise(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"OACK for a Pi 4", appendOACK(nil, []option{{"tsize", "2279648"}, {"blksize", "1024"}}),
			"\x00\x06tsize\x002279648\x00blksize\x001024\x00"},
		{"ACK 0", appendACK(nil, 0), "\x00\x04\x00\x00"},
		{"ACK 65535", appendACK(nil, 65535), "\x00\x04\xff\xff"},
		{"ERROR 1", appendError(nil, errNotFound, "file not found"), "\x00\x05\x00\x01file not found\x00"},
		{"ERROR 2 WRQ", appendError(nil, errAccess, "access violation (read-only server)"),
			"\x00\x05\x00\x02access violation (read-only server)\x00"},
		{"RRQ", appendRequest(nil, &request{Op: opRRQ, Filename: "a/b", Mode: "octet", Options: []option{{"windowsize", "16"}}}),
			"\x00\x01a/b\x00octet\x00windowsize\x0016\x00"},
		{"DATA header", func() []byte { b := make([]byte, 4); putDataHeader(b, 0x1234); return b }(), "\x00\x03\x12\x34"},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, []byte(tt.want)) {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestParsePacket(t *testing.T) {
	tests := []struct {
		in      string
		want    packet
		wantErr bool
	}{
		{in: "\x00\x04\x00\x07", want: packet{Op: opACK, Block: 7}},
		{in: "\x00\x04\xff\xff", want: packet{Op: opACK, Block: 65535}},
		{in: "\x00\x03\x00\x01abc", want: packet{Op: opDATA, Block: 1, Data: []byte("abc")}},
		{in: "\x00\x03\x00\x02", want: packet{Op: opDATA, Block: 2, Data: []byte{}}},
		// The Raspberry Pi's probe answer.
		{in: "\x00\x05\x00\x00Early terminate\x00", want: packet{Op: opERROR, Code: 0, Msg: "Early terminate"}},
		{in: "\x00\x05\x00\x01no NUL", want: packet{Op: opERROR, Code: 1, Msg: "no NUL"}},
		{in: "\x00\x06blksize\x001024\x00TSIZE\x005\x00", want: packet{Op: opOACK, Options: []option{{"blksize", "1024"}, {"tsize", "5"}}}},
		{in: "\x00\x04\x00", wantErr: true},
		{in: "\x00\x05\x00", wantErr: true},
		{in: "\x00", wantErr: true},
		{in: "\x00\x07", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parsePacket([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); !tt.wantErr && diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.in, diff)
		}
	}
}

// FuzzParseRequest: parsing never panics; what parses re-encodes to
// something that parses the same; cleanPath only yields local paths.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("\x00\x019ffefdef/start4.elf\x00octet\x00tsize\x000\x00blksize\x001024\x00"))
	f.Add([]byte("\x00\x01x\x00NETASCII\x00windowsize\x0064\x00blksize\x001468\x00"))
	f.Add([]byte("\x00\x02../../etc/passwd\x00octet\x00"))
	f.Add([]byte("\x00\x01/a//./b\x00octet\x00x\x00"))
	f.Add([]byte("\x00\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := parseRequest(in)
		parsePacket(in)
		if err != nil {
			return
		}
		again, err := parseRequest(appendRequest(nil, r))
		if err != nil {
			t.Fatalf("re-encoded %+v does not parse: %v", r, err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if p, err := cleanPath(r.Filename); err == nil {
			if !localPath(p) {
				t.Fatalf("cleanPath(%q) = %q, not local", r.Filename, p)
			}
		}
	})
}
