// Package kimage tells what a kernel image file is by its magic bytes. It
// has no dependencies, so both the builder (checking a downloaded kernel
// against the board) and the init (checking a kernel it is about to kexec)
// use it.
//
//	switch kimage.Kind(img) {
//	case kimage.ARM64: ...
//	}
package kimage

import "encoding/binary"

// Kinds of image.
const (
	Unknown = ""
	ARM64   = "arm64" // an uncompressed arm64 Image: "ARM\x64" at offset 56
	AMD64   = "amd64" // an x86 bzImage: "HdrS" at offset 0x202
	Gzip    = "gzip"  // gzip-compressed (an Image.gz, say)
)

// Kind says what img is.
func Kind(img []byte) string {
	switch {
	case len(img) >= 4 && binary.LittleEndian.Uint32(img[:4]) == SquashfsMagic:
		return Squashfs
	case len(img) >= 64 && binary.LittleEndian.Uint32(img[56:60]) == 0x644d5241:
		return ARM64
	case len(img) >= 0x206 && string(img[0x202:0x206]) == "HdrS":
		return AMD64
	case len(img) > 2 && img[0] == 0x1f && img[1] == 0x8b:
		return Gzip
	}
	return Unknown
}
