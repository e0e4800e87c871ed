package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   uint16 = 1
	opWRQ   uint16 = 2
	opDATA  uint16 = 3
	opACK   uint16 = 4
	opERROR uint16 = 5
	opOACK  uint16 = 6
)

// Error codes (RFC 1350, RFC 2347).
const (
	errUndefined     uint16 = 0
	errNotFound      uint16 = 1
	errAccess        uint16 = 2
	errDiskFull      uint16 = 3
	errIllegalOp     uint16 = 4
	errUnknownTID    uint16 = 5
	errFileExists    uint16 = 6
	errNoSuchUser    uint16 = 7
	errOptionRefused uint16 = 8
)

// Option limits.
const (
	minBlockSize     = 8     // RFC 2348
	maxBlockSize     = 65464 // RFC 2348
	defaultBlockSize = 512   // RFC 1350
	maxWindowSize    = 65535 // RFC 7440
	maxTimeoutOption = 255   // RFC 2349, seconds
)

var errMalformed = errors.New("malformed packet")

// request is a decoded RRQ or WRQ.
type request struct {
	Op       uint16
	Filename string
	Mode     string // lower-cased
	// Options holds the request's options with lower-cased names, in the
	// order they were sent. A repeated name keeps its first value.
	Options []option
}

type option struct{ Name, Value string }

func (r *request) option(name string) (string, bool) {
	for _, o := range r.Options {
		if o.Name == name {
			return o.Value, true
		}
	}
	return "", false
}

// parseRequest decodes an RRQ or WRQ. It never panics on any input (see
// FuzzParseRequest). It is lenient where real clients are sloppy: a missing
// NUL after the last field is accepted, and a trailing option name without a
// value is ignored.
func parseRequest(p []byte) (*request, error) {
	if len(p) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", errMalformed, len(p))
	}
	op := binary.BigEndian.Uint16(p)
	if op != opRRQ && op != opWRQ {
		return nil, fmt.Errorf("%w: opcode %d is not a request", errMalformed, op)
	}
	fields := splitFields(p[2:])
	if len(fields) < 2 {
		return nil, fmt.Errorf("%w: request without filename and mode", errMalformed)
	}
	if fields[0] == "" {
		return nil, fmt.Errorf("%w: empty filename", errMalformed)
	}
	r := &request{Op: op, Filename: fields[0], Mode: strings.ToLower(fields[1])}
	switch r.Mode {
	case "octet", "netascii":
	default:
		return nil, fmt.Errorf("%w: unsupported mode %q", errMalformed, fields[1])
	}
	seen := map[string]bool{}
	for i := 2; i+1 < len(fields); i += 2 {
		name := strings.ToLower(fields[i])
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		r.Options = append(r.Options, option{name, fields[i+1]})
	}
	return r, nil
}

// splitFields splits NUL-terminated strings. A final field without its NUL
// is kept; the empty remainder after a final NUL is not a field.
func splitFields(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out
}

func appendRequest(b []byte, r *request) []byte {
	b = binary.BigEndian.AppendUint16(b, r.Op)
	b = append(append(b, r.Filename...), 0)
	b = append(append(b, r.Mode...), 0)
	return appendOptions(b, r.Options)
}

func appendOptions(b []byte, opts []option) []byte {
	for _, o := range opts {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

func appendOACK(b []byte, opts []option) []byte {
	b = binary.BigEndian.AppendUint16(b, opOACK)
	return appendOptions(b, opts)
}

func appendACK(b []byte, block uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, opACK)
	return binary.BigEndian.AppendUint16(b, block)
}

func appendError(b []byte, code uint16, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	return append(append(b, msg...), 0)
}

// putDataHeader writes a DATA header into p[:4].
func putDataHeader(p []byte, block uint16) {
	binary.BigEndian.PutUint16(p, opDATA)
	binary.BigEndian.PutUint16(p[2:], block)
}

// packet is a decoded packet as seen by a transfer (ACK, ERROR, DATA or
// OACK). Block is the block number of ACK/DATA, Code and Msg those of ERROR,
// Data the payload of DATA, Options those of OACK.
type packet struct {
	Op      uint16
	Block   uint16
	Code    uint16
	Msg     string
	Data    []byte
	Options []option
}

func parsePacket(p []byte) (packet, error) {
	if len(p) < 2 {
		return packet{}, fmt.Errorf("%w: %d bytes", errMalformed, len(p))
	}
	op := binary.BigEndian.Uint16(p)
	switch op {
	case opACK, opDATA:
		if len(p) < 4 {
			return packet{}, fmt.Errorf("%w: short opcode %d", errMalformed, op)
		}
		pk := packet{Op: op, Block: binary.BigEndian.Uint16(p[2:])}
		if op == opDATA {
			pk.Data = p[4:]
		}
		return pk, nil
	case opERROR:
		if len(p) < 4 {
			return packet{}, fmt.Errorf("%w: short ERROR", errMalformed)
		}
		msg := p[4:]
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		return packet{Op: op, Code: binary.BigEndian.Uint16(p[2:]), Msg: string(msg)}, nil
	case opOACK:
		f := splitFields(p[2:])
		pk := packet{Op: op}
		for i := 0; i+1 < len(f); i += 2 {
			pk.Options = append(pk.Options, option{strings.ToLower(f[i]), f[i+1]})
		}
		return pk, nil
	case opRRQ, opWRQ:
		return packet{Op: op}, nil
	}
	return packet{}, fmt.Errorf("%w: unknown opcode %d", errMalformed, op)
}
