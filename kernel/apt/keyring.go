package apt

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// SystemKeyring is the keyring of Debian's debian-archive-keyring package.
const SystemKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// embeddedKeyring is a copy of SystemKeyring from a Debian 12 host. It is a
// string, so it cannot be modified.
//
//go:embed keys/debian-archive-keyring.gpg
var embeddedKeyring string

// EmbeddedKeyring returns the Debian archive keys embedded in ramboot.
func EmbeddedKeyring() (openpgp.EntityList, error) {
	el, err := parseKeyring([]byte(embeddedKeyring))
	if err != nil {
		return nil, fmt.Errorf("embedded Debian archive keyring: %w", err)
	}
	return el, nil
}

// LoadKeyring reads OpenPGP public keys from the given files, each either
// binary (.gpg, as in /usr/share/keyrings) or ASCII-armored (.asc), and
// returns them all. Keys present in several files are returned once.
//
// With no paths, it returns the keys of SystemKeyring, if that file exists,
// together with the embedded copy of the Debian archive keyring.
func LoadKeyring(paths ...string) (openpgp.EntityList, error) {
	var all openpgp.EntityList
	if len(paths) == 0 {
		emb, err := EmbeddedKeyring()
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(SystemKeyring)
		switch {
		case err == nil:
			sys, err := parseKeyring(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", SystemKeyring, err)
			}
			all = append(all, sys...)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, fmt.Errorf("reading keyring: %w", err)
		}
		return dedup(append(all, emb...)), nil
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading keyring: %w", err)
		}
		el, err := parseKeyring(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		all = append(all, el...)
	}
	return dedup(all), nil
}

func parseKeyring(data []byte) (openpgp.EntityList, error) {
	var (
		el  openpgp.EntityList
		err error
	)
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN PGP")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("not a usable OpenPGP keyring: %w", err)
	}
	if len(el) == 0 {
		return nil, errors.New("keyring holds no keys")
	}
	return el, nil
}

// dedup drops entities whose primary key fingerprint was seen before.
func dedup(el openpgp.EntityList) openpgp.EntityList {
	seen := make(map[string]bool)
	out := el[:0:0]
	for _, e := range el {
		fp := string(e.PrimaryKey.Fingerprint)
		if seen[fp] {
			continue
		}
		seen[fp] = true
		out = append(out, e)
	}
	return out
}
