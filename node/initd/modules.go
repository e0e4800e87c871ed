//go:build linux

package initd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// readModuleLists reads the load order and modules.dep beside it.
func readModuleLists(orderFile string) (order []string, deps map[string][]string, err error) {
	order, err = readLines(orderFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	deps = map[string][]string{}
	if lines, err := readLines(filepath.Join(filepath.Dir(orderFile), "modules.dep")); err == nil {
		for _, l := range lines {
			mod, ds, ok := strings.Cut(l, ":")
			if ok {
				deps[mod] = strings.Fields(ds)
			}
		}
	}
	return order, deps, nil
}

// splitNetwork splits the load order into the network drivers with their
// dependencies (needed before DHCP) and the rest (NFS, overlay: needed
// only later), keeping the order within each.
func splitNetwork(order []string, deps map[string][]string) (first, rest []string) {
	need := map[string]bool{}
	for _, m := range order {
		if strings.HasPrefix(m, "kernel/drivers/net/") {
			need[m] = true
			for _, d := range deps[m] {
				need[d] = true
			}
		}
	}
	for _, m := range order {
		if need[m] {
			first = append(first, m)
		} else {
			rest = append(rest, m)
		}
	}
	return first, rest
}

// loadSet loads order (a dependency-closed list) in parallel.
func loadSet(dir string, order []string, deps map[string][]string, report func(string, ...any)) (int, error) {
	type state struct {
		done chan struct{}
		err  error
	}
	st := map[string]*state{}
	for _, m := range order {
		st[m] = &state{done: make(chan struct{})}
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		n      int
		failed []string
	)
	for _, m := range order {
		wg.Add(1)
		go func(m string) {
			defer wg.Done()
			s := st[m]
			defer close(s.done)
			for _, d := range deps[m] {
				if ds, ok := st[d]; ok {
					<-ds.done
					if ds.err != nil {
						s.err = fmt.Errorf("needs %s, which failed", filepath.Base(d))
						break
					}
				}
			}
			if s.err == nil {
				s.err = finit(filepath.Join(dir, m))
			}
			mu.Lock()
			defer mu.Unlock()
			if s.err != nil {
				report("module %s: %v", filepath.Base(m), s.err)
				failed = append(failed, filepath.Base(m))
				return
			}
			n++
		}(m)
	}
	wg.Wait()
	if len(failed) > 0 {
		return n, fmt.Errorf("%d loaded, %d failed: %s", n, len(failed), strings.Join(failed, " "))
	}
	return n, nil
}

func readLines(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
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
