// Package testlog keeps what a failed e2e test's processes printed.
package testlog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Output shows a failed test's process output. With RAMBOOT_E2E_LOGS
// set (make test sets it) the whole output goes to a file there and the
// test's log gets its last lines: a CI excerpt ends with the test's last
// lines, which should be its failures, not pages of a server's log.
func Output(t testing.TB, name, out string) {
	dir := os.Getenv("RAMBOOT_E2E_LOGS")
	if dir == "" {
		t.Logf("%s output:\n%s", name, out)
		return
	}
	file := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()+"-"+name)+".log")
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		err = os.WriteFile(file, []byte(out), 0o644)
	}
	if err != nil {
		t.Logf("%s output (not kept: %v):\n%s", name, err, out)
		return
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > 6 {
		lines = lines[len(lines)-6:]
	}
	t.Logf("%s output: all of it in %s; its last lines:\n%s", name, file, strings.Join(lines, "\n"))
}

// Keep is where a test keeps a file for people to look at after the run
// (a screenshot): RAMBOOT_E2E_LOGS when set, else the test's temporary
// directory.
func Keep(t testing.TB, name string) string {
	dir := os.Getenv("RAMBOOT_E2E_LOGS")
	if dir == "" {
		return filepath.Join(t.TempDir(), name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-"+name)
}
