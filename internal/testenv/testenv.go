// Package testenv keeps tests from passing by skipping. A test that cannot
// run here (a tool is missing, it needs root, a switch such as
// RAMBOOT_NET_TESTS is unset) calls Skip or Skipf instead of t.Skip: that
// skips in a plain `go test`, but under RAMBOOT_STRICT=1, which `make test`
// sets after installing everything the tests need, it fails with the same
// message. Skips for -short (`make unit`) stay t.Skip.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Strict reports whether RAMBOOT_STRICT=1: every test must really run.
func Strict() bool { return os.Getenv("RAMBOOT_STRICT") == "1" }

// Skip skips t, or fails it under RAMBOOT_STRICT=1, with args as t.Skip's.
func Skip(t testing.TB, args ...any) {
	t.Helper()
	msg := fmt.Sprint(args...)
	if Strict() {
		t.Fatal(msg + " (RAMBOOT_STRICT=1: a missing tool, root or switch is a failure)")
	}
	t.Skip(msg)
}

// Skipf is Skip with a format.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	Skip(t, fmt.Sprintf(format, args...))
}
