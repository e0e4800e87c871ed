package modules

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// maxPlain bounds the decompressed size of one module (the largest Debian
// module is a few tens of MB).
const maxPlain = 1 << 30

// Decompress decompresses a module file according to its name's suffix
// (.xz, .zst, .gz; anything else is returned as is) and returns the name
// without that suffix along with the plain bytes.
func Decompress(name string, data []byte) (plainName string, plain []byte, err error) {
	var r io.Reader
	switch {
	case strings.HasSuffix(name, ".xz"):
		xr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return "", nil, fmt.Errorf("%s: xz: %w", name, err)
		}
		r = xr
	case strings.HasSuffix(name, ".zst"):
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxPlain))
		if err != nil {
			return "", nil, fmt.Errorf("%s: zstd: %w", name, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(name, ".gz"):
		gr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return "", nil, fmt.Errorf("%s: gzip: %w", name, err)
		}
		r = gr
	default:
		return name, data, nil
	}
	plainName = name[:strings.LastIndexByte(name, '.')]
	var buf bytes.Buffer
	buf.Grow(4 * len(data))
	n, err := io.Copy(&buf, io.LimitReader(r, maxPlain+1))
	if err != nil {
		return "", nil, fmt.Errorf("decompressing %s: %w", name, err)
	}
	if n > maxPlain {
		return "", nil, fmt.Errorf("decompressing %s: larger than %d bytes", name, maxPlain)
	}
	return plainName, buf.Bytes(), nil
}
