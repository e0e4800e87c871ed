package eeprom

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// PubkeyFile is the file section that holds the public key the bootloader
// checks signatures with: boot.img's boot.sig for HTTP boot, and with
// secure boot the signed config (bootconf.sig).
const PubkeyFile = "pubkey.bin"

// KeyBits is the only RSA key size the bootloader takes.
const KeyBits = 2048

// PubkeyLen is the size of a pubkey.bin content: the modulus in 256 bytes
// and the exponent in 8, both little-endian.
const PubkeyLen = KeyBits/8 + 8

// ErrKey is returned for a key the bootloader cannot use or that cannot be
// read.
var ErrKey = errors.New("unusable RSA key")

// ParsePublicKey reads a PEM-encoded RSA key as `rpi-eeprom-config -p`
// does (Cryptodome's RSA.importKey): a public key ("PUBLIC KEY", PKIX, as
// `openssl rsa -pubout` writes it, or "RSA PUBLIC KEY", PKCS#1) or a private
// key ("RSA PRIVATE KEY" or "PRIVATE KEY"), whose public half it returns.
// The key must be RSA-2048.
func ParsePublicKey(data []byte) (*rsa.PublicKey, error) {
	blk, err := keyBlock(data)
	if err != nil {
		return nil, err
	}
	var pub *rsa.PublicKey
	switch blk.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PUBLIC KEY: %v", ErrKey, err)
		}
		p, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: a %T, not an RSA key; make one with openssl genrsa -out key.pem %d", ErrKey, k, KeyBits)
		}
		pub = p
	case "RSA PUBLIC KEY":
		if pub, err = x509.ParsePKCS1PublicKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("%w: RSA PUBLIC KEY: %v", ErrKey, err)
		}
	default:
		priv, err := privateKey(blk)
		if err != nil {
			return nil, err
		}
		pub = &priv.PublicKey
	}
	return pub, checkSize(pub)
}

// ParsePrivateKey reads a PEM-encoded RSA-2048 private key ("RSA PRIVATE
// KEY", as openssl genrsa writes it, or "PRIVATE KEY", PKCS#8). An
// encrypted key is refused: decrypt it first (openssl rsa -in key.pem
// -out plain.pem).
func ParsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	blk, err := keyBlock(data)
	if err != nil {
		return nil, err
	}
	priv, err := privateKey(blk)
	if err != nil {
		return nil, err
	}
	return priv, checkSize(&priv.PublicKey)
}

func keyBlock(data []byte) (*pem.Block, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block (-----BEGIN ...-----); give the key in PEM form, as openssl genrsa -out key.pem %d writes it", ErrKey, KeyBits)
	}
	if blk.Type == "ENCRYPTED PRIVATE KEY" || blk.Headers["Proc-Type"] != "" {
		return nil, fmt.Errorf("%w: the key is encrypted; decrypt it first: openssl rsa -in key.pem -out plain.pem", ErrKey)
	}
	return blk, nil
}

func privateKey(blk *pem.Block) (*rsa.PrivateKey, error) {
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: RSA PRIVATE KEY: %v", ErrKey, err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PRIVATE KEY: %v", ErrKey, err)
		}
		p, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: a %T, not an RSA key; make one with openssl genrsa -out key.pem %d", ErrKey, k, KeyBits)
		}
		return p, nil
	}
	return nil, fmt.Errorf("%w: a PEM %q block; want RSA PRIVATE KEY, PRIVATE KEY, PUBLIC KEY or RSA PUBLIC KEY", ErrKey, blk.Type)
}

func checkSize(pub *rsa.PublicKey) error {
	if n := pub.N.BitLen(); n != KeyBits {
		return fmt.Errorf("%w: a %d-bit RSA key, but the bootloader takes RSA-%d only; make one with openssl genrsa -out key.pem %d", ErrKey, n, KeyBits, KeyBits)
	}
	return nil
}

// PublicKeyBin returns the pubkey.bin content for pub, as rpi-eeprom-config's
// pemtobin makes it: n in 256 bytes then e in 8, both little-endian. pub
// must be an RSA-2048 key.
func PublicKeyBin(pub *rsa.PublicKey) ([]byte, error) {
	if err := checkSize(pub); err != nil {
		return nil, err
	}
	if pub.E <= 0 {
		return nil, fmt.Errorf("%w: exponent %d", ErrKey, pub.E)
	}
	out := make([]byte, PubkeyLen)
	pub.N.FillBytes(out[:KeyBits/8])
	reverse(out[:KeyBits/8])
	e := uint64(pub.E)
	for i := range 8 {
		out[KeyBits/8+i] = byte(e >> (8 * i))
	}
	return out, nil
}

// ParsePublicKeyBin is the reverse of PublicKeyBin (`rpi-bootloader-key-convert
// --inform bin`). It returns false for a content that holds no key, such
// as the 512 zero bytes of the official images' pubkey.bin.
func ParsePublicKeyBin(b []byte) (*rsa.PublicKey, bool) {
	if len(b) < PubkeyLen {
		return nil, false
	}
	nb := append([]byte(nil), b[:KeyBits/8]...)
	reverse(nb)
	var e uint64
	for i := range 8 {
		e |= uint64(b[KeyBits/8+i]) << (8 * i)
	}
	n := new(big.Int).SetBytes(nb)
	if n.BitLen() != KeyBits || e < 3 || e > 1<<31-1 || e%2 == 0 {
		return nil, false
	}
	return &rsa.PublicKey{N: n, E: int(e)}, true
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// SetPublicKey writes pub into the image's pubkey.bin section, as
// `rpi-eeprom-config --config boot.conf --pubkey key.pem` does after
// writing the config. A public EEPROM update replaces the image and so
// removes the key.
func (im *Image) SetPublicKey(pub *rsa.PublicKey) error {
	b, err := PublicKeyBin(pub)
	if err != nil {
		return err
	}
	return im.SetFile(PubkeyFile, b)
}

// PublicKey returns the key in the image's pubkey.bin, and false when there
// is none (the official images hold 512 zero bytes).
func (im *Image) PublicKey() (*rsa.PublicKey, bool) {
	b, ok := im.File(PubkeyFile)
	if !ok {
		return nil, false
	}
	return ParsePublicKeyBin(b)
}

// KeySHA256 returns the SHA-256, in hex, of pub's pubkey.bin form
// (PublicKeyBin): a short name for the key, the same for every PEM form of
// it.
func KeySHA256(pub *rsa.PublicKey) (string, error) {
	b, err := PublicKeyBin(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
