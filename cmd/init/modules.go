//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// loadModules loads each module named in the load-order file (paths
// relative to its directory, one per line, dependencies first). A module
// that is already loaded is fine; others that fail are reported and the
// rest still load.
func loadModules(orderFile string, report func(string, ...any)) (int, error) {
	f, err := os.Open(orderFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	defer f.Close()
	dir := filepath.Dir(orderFile)
	n := 0
	var failed []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" || strings.HasPrefix(rel, "#") {
			continue
		}
		if err := finit(filepath.Join(dir, rel)); err != nil {
			report("module %s: %v", filepath.Base(rel), err)
			failed = append(failed, filepath.Base(rel))
			continue
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	if len(failed) > 0 {
		return n, fmt.Errorf("%d loaded, %d failed: %s", n, len(failed), strings.Join(failed, " "))
	}
	return n, nil
}

func finit(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}
