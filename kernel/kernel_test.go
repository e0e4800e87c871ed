package kernel

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestCheckMagic(t *testing.T) {
	arm := make([]byte, 128)
	binary.LittleEndian.PutUint32(arm[56:], 0x644d5241)
	x86 := make([]byte, 0x300)
	copy(x86[0x202:], "HdrS")
	gz := append([]byte{0x1f, 0x8b}, make([]byte, 100)...)
	for _, tc := range []struct {
		name string
		img  []byte
		arch string
		want string // "" = ok
	}{
		{"arm64 ok", arm, "arm64", ""},
		{"amd64 ok", x86, "amd64", ""},
		{"x86 on arm64", x86, "arm64", "x86 bzImage"},
		{"arm64 on amd64", arm, "amd64", "arm64 Image"},
		{"gzip", gz, "arm64", "gzip"},
		{"garbage", []byte("hello"), "arm64", "not an arm64 kernel"},
		{"empty", nil, "amd64", "not an amd64 kernel"},
		{"unknown arch", arm, "mips", "no magic check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckMagic(tc.img, tc.arch)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrBadKernel) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
