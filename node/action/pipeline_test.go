package action

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// TestPipeline: what arrives is hashed and written whole and in order,
// whatever the reads' sizes; a read's error ends it with that error; a
// write's error stops it early (no goroutine left waiting).
func TestPipeline(t *testing.T) {
	data := make([]byte, 5*pipeChunk+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, r := range []io.Reader{bytes.NewReader(data), iotest.OneByteReader(bytes.NewReader(data[:3*pipeChunk+7])), iotest.HalfReader(bytes.NewReader(data))} {
		var out bytes.Buffer
		h := sha256.New()
		n, err := pipeline(r, h, &out)
		want := data[:n]
		if err != nil || !bytes.Equal(out.Bytes(), want) || !bytes.Equal(h.Sum(nil), sha256New(want)) || (n != int64(len(data)) && n != 3*pipeChunk+7) {
			t.Errorf("pipeline: %d bytes, %v; written equal %v", n, err, bytes.Equal(out.Bytes(), want))
		}
	}
	cut := errors.New("connection reset")
	n, err := pipeline(io.MultiReader(bytes.NewReader(data[:pipeChunk+5]), iotest.ErrReader(cut)), sha256.New(), io.Discard)
	if !errors.Is(err, cut) || n != pipeChunk+5 {
		t.Errorf("a read error: %d, %v; want %d and the error", n, err, pipeChunk+5)
	}
	full := errors.New("no space left on device")
	n, err = pipeline(bytes.NewReader(data), sha256.New(), &failAfter{left: 2 * pipeChunk, err: full})
	if !errors.Is(err, full) || n != 2*pipeChunk {
		t.Errorf("a write error: %d, %v; want %d and the error", n, err, 2*pipeChunk)
	}
}

func sha256New(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// failAfter takes left bytes, then fails.
type failAfter struct {
	left int
	err  error
}

func (f *failAfter) Write(b []byte) (int, error) {
	if len(b) > f.left {
		n := f.left
		f.left = 0
		return n, f.err
	}
	f.left -= len(b)
	return len(b), nil
}
