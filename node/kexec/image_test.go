package kexec

import (
	"bytes"
	"testing"
)

func TestInitrdConcat(t *testing.T) {
	p := &Image{Initrds: []Initrd{{Data: []byte("abcde")}, {Data: []byte("1234")}, {Data: []byte("z")}}}
	if got, want := p.Initrd(), []byte("abcde\x00\x00\x001234z\x00\x00\x00"); !bytes.Equal(got, want) {
		t.Errorf("Initrd() = %q, want %q", got, want)
	}
	if got := (&Image{}).Initrd(); got != nil {
		t.Errorf("Initrd() = %q, want nil", got)
	}
}
