package action

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// What an install fetches besides its image, root's authorized_keys
// (keys=) and the cloud-init seed (seed=), may carry digests in option 224
// (keys=URL#sha256=HEX, seed=URL#sha256=UHEX,MHEX): the file is checked
// as fetched, before it is written to the disk, and one that does not
// match fails the install. Without a digest it is installed as served.

// errDigest is wrapped by the error of a file whose SHA-256 is not the
// one option 224 names.
var errDigest = errors.New("sha256 mismatch")

// checkSHA256 checks b, fetched from u, against want (64 hex digits, any
// case); want "" checks nothing.
func checkSHA256(u string, b []byte, want string) error {
	if want == "" {
		return nil
	}
	want = strings.ToLower(want)
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		return fmt.Errorf("%s: the expected sha256 %q is not 64 hex digits", u, want)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("%s: %w: want sha256=%s (option 224), got %s (%d bytes served): serve the file the digest is of, or correct the digest (nodes.yaml: install keys:/seed:)", u, errDigest, want, got, len(b))
	}
	return nil
}

// fetchChecked fetches u with f and checks its bytes against want (""
// checks nothing).
func fetchChecked(ctx context.Context, f fetcher, u, want string) ([]byte, error) {
	b, err := f.Fetch(ctx, u)
	if err != nil {
		return nil, err
	}
	if err := checkSHA256(u, b, want); err != nil {
		return nil, err
	}
	return b, nil
}
