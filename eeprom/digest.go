package eeprom

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The .sig files of rpi-eeprom-digest (raspberrypi/rpi-eeprom; format
// unchanged from 01300506 to 86759b04): pieeprom.sig next to an EEPROM
// update, boot.sig next to an HTTP-boot boot.img, bootconf.sig for a signed
// config. Lines:
//
//	<sha256 of the file, 64 lowercase hex>
//	ts: <Unix seconds: $SOURCE_DATE_EPOCH, else now>
//	target-soc: 2711|2712          (optional, firmware updates only, -c)
//	rsa2048: <signature, 512 lowercase hex>   (only with -k KEY)
//
// The signature is `openssl dgst -sign KEY -sha256` of the file:
// RSASSA-PKCS1-v1_5 with SHA-256, which is deterministic, so SignDigest
// writes the same bytes as the script for the same key, file and ts.

// Digest returns the content of a .sig file for data, as rpi-eeprom-digest
// writes it without a key: the sha256 in hex, a newline, "ts: " and ts in
// Unix seconds, a newline.
func Digest(data []byte, ts time.Time) []byte {
	return fmt.Appendf(nil, "%x\nts: %d\n", sha256.Sum256(data), ts.Unix())
}

// SignDigest returns the content of a signed .sig file for data, as
// `SOURCE_DATE_EPOCH=ts rpi-eeprom-digest -k key.pem -i FILE -o FILE.sig`
// writes it: Digest's two lines and "rsa2048: " with the RSA-2048
// PKCS#1 v1.5 SHA-256 signature of data in lowercase hex. This is boot.sig
// for an HTTP-boot boot.img.
func SignDigest(data []byte, ts int64, key *rsa.PrivateKey) ([]byte, error) {
	if err := checkSize(&key.PublicKey); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return nil, fmt.Errorf("%w: signing: %v", ErrKey, err)
	}
	return fmt.Appendf(nil, "%x\nts: %d\nrsa2048: %x\n", sum, ts, sig), nil
}

// A Sig is a parsed .sig file.
type Sig struct {
	SHA256    string // 64 lowercase hex
	TS        int64
	TargetSoC string // "" when absent
	RSA2048   []byte // the 256-byte signature; nil when unsigned
}

// ErrSig is returned by ParseSig and VerifySig.
var ErrSig = errors.New("bad signature file")

// ParseSig reads a .sig file written by rpi-eeprom-digest or SignDigest.
// Lines of other names are ignored, as the bootloader's reader is not
// documented to refuse them.
func ParseSig(b []byte) (Sig, error) {
	var s Sig
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(b) == 0 || len(lines) == 0 {
		return s, fmt.Errorf("%w: empty", ErrSig)
	}
	if !isLowerHex(lines[0], 64) {
		return s, fmt.Errorf("%w: the first line %q is not a sha256 in 64 lowercase hex digits", ErrSig, clip(lines[0]))
	}
	s.SHA256 = lines[0]
	haveTS := false
	for i, l := range lines[1:] {
		name, val, ok := strings.Cut(l, ": ")
		if !ok {
			return s, fmt.Errorf("%w: line %d %q is not NAME: VALUE", ErrSig, i+2, clip(l))
		}
		switch name {
		case "ts":
			ts, err := strconv.ParseInt(val, 10, 64)
			if err != nil || haveTS {
				return s, fmt.Errorf("%w: line %d: ts %q is not one decimal Unix time", ErrSig, i+2, clip(val))
			}
			s.TS, haveTS = ts, true
		case "target-soc":
			s.TargetSoC = val
		case "rsa2048":
			if !isLowerHex(val, 512) || s.RSA2048 != nil {
				return s, fmt.Errorf("%w: line %d: rsa2048 is not one signature in 512 lowercase hex digits", ErrSig, i+2)
			}
			s.RSA2048, _ = hex.DecodeString(val)
		}
	}
	if !haveTS {
		return s, fmt.Errorf("%w: no ts: line", ErrSig)
	}
	return s, nil
}

// VerifySig checks sig, a .sig file, against data and pub: its sha256 line
// must be data's, and its rsa2048 signature made with pub's private half.
// (`rpi-eeprom-digest -k pub.pem -i FILE -v FILE.sig` checks the signature
// only.)
func VerifySig(data, sig []byte, pub *rsa.PublicKey) error {
	s, err := ParseSig(sig)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != s.SHA256 {
		return fmt.Errorf("%w: its sha256 is %s, the file's %s: the signature file belongs to another file", ErrSig, s.SHA256, got)
	}
	if s.RSA2048 == nil {
		return fmt.Errorf("%w: no rsa2048 line: the file is not signed (sign it with a key: rpi-eeprom-digest -k key.pem)", ErrSig)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], s.RSA2048); err != nil {
		return fmt.Errorf("%w: the rsa2048 signature does not verify with this public key (another key signed it, or the file changed)", ErrSig)
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
