package modules

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"
)

// node is a module in a dependency graph: hard and soft list the names of
// the modules that must be loaded before it.
type node struct {
	mod  Module
	hard []string
	soft []string
}

// topoSort orders the nodes so that each comes after its hard and soft
// prerequisites (edges to names not in nodes are ignored), choosing the
// smallest name whenever there is a choice. Soft edges in a cycle are
// dropped (the smallest-named module whose hard prerequisites are all
// loaded goes first); a cycle of hard edges is an error.
func topoSort(nodes map[string]*node) ([]string, error) {
	hardLeft := map[string]int{}
	softLeft := map[string]int{}
	hardUsers := map[string][]string{}
	softUsers := map[string][]string{}
	for n, nd := range nodes {
		hardLeft[n] += 0
		for _, d := range nd.hard {
			if nodes[d] != nil {
				hardLeft[n]++
				hardUsers[d] = append(hardUsers[d], n)
			}
		}
		for _, d := range nd.soft {
			if nodes[d] != nil {
				softLeft[n]++
				softUsers[d] = append(softUsers[d], n)
			}
		}
	}
	ready := &nameHeap{}
	for n := range nodes {
		if hardLeft[n] == 0 && softLeft[n] == 0 {
			heap.Push(ready, n)
		}
	}
	done := map[string]bool{}
	order := make([]string, 0, len(nodes))
	emit := func(n string) {
		done[n] = true
		order = append(order, n)
		for _, u := range hardUsers[n] {
			hardLeft[u]--
			if hardLeft[u] == 0 && softLeft[u] == 0 {
				heap.Push(ready, u)
			}
		}
		for _, u := range softUsers[n] {
			softLeft[u]--
			if hardLeft[u] == 0 && softLeft[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	for len(order) < len(nodes) {
		if ready.Len() > 0 {
			emit(heap.Pop(ready).(string))
			continue
		}
		// Stuck: every remaining module waits for another one. Break a
		// softdep cycle if there is one.
		var remaining []string
		for n := range nodes {
			if !done[n] {
				remaining = append(remaining, n)
			}
		}
		sort.Strings(remaining)
		broke := false
		for _, n := range remaining {
			if hardLeft[n] == 0 {
				softLeft[n] = 0 // its users' counters are unaffected
				emit(n)
				broke = true
				break
			}
		}
		if !broke {
			return nil, fmt.Errorf("kernel modules depend on each other in a cycle: %s", hardCycle(nodes, done, remaining[0]))
		}
	}
	return order, nil
}

// hardCycle follows unloaded hard dependencies from start until a module
// repeats, and returns the cycle as "a -> b -> a".
func hardCycle(nodes map[string]*node, done map[string]bool, start string) string {
	seen := map[string]int{}
	var path []string
	n := start
	for {
		if i, ok := seen[n]; ok {
			return strings.Join(append(path[i:], n), " -> ")
		}
		seen[n] = len(path)
		path = append(path, n)
		next := ""
		for _, d := range nodes[n].hard {
			if nodes[d] != nil && !done[d] && (next == "" || d < next) {
				next = d
			}
		}
		if next == "" {
			return strings.Join(path, " -> ") // cannot happen
		}
		n = next
	}
}

type nameHeap []string

func (h nameHeap) Len() int           { return len(h) }
func (h nameHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h nameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nameHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *nameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ModulesDep returns a modules.dep for mods (normally a Result.Modules) in
// the format depmod writes, which modprobe (kmod, busybox) and u-root's
// kmodule read: one line per module, sorted by path,
//
//	kernel/a/b.ko: kernel/c/d.ko kernel/e/f.ko
//
// listing all of the module's hard dependencies, transitively, with each
// module before the ones it depends on (the deepest last): modprobe loads
// them from the end of the list. Softdeps are not part of modules.dep (see
// ModulesSoftdep). Dependencies that are not among mods are left out.
func ModulesDep(mods []Module) []byte {
	nodes := map[string]*node{}
	soft := map[string]*node{}
	for _, m := range mods {
		nodes[m.Name] = &node{mod: m, hard: m.Depends}
		soft[m.Name] = &node{soft: m.Depends}
	}
	// A dependency order independent of the order of mods. Closure never
	// returns cycles of depends; should mods have one anyway, treating the
	// edges as soft breaks it rather than failing.
	order, _ := topoSort(soft)
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	sorted := append([]Module(nil), mods...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })

	var b strings.Builder
	for _, m := range sorted {
		b.WriteString(m.Path)
		b.WriteString(":")
		deps := map[string]bool{}
		var walk func(string)
		walk = func(n string) {
			for _, d := range nodes[n].hard {
				if nodes[d] != nil && !deps[d] {
					deps[d] = true
					walk(d)
				}
			}
		}
		walk(m.Name)
		delete(deps, m.Name)
		list := sortedKeys(deps)
		sort.SliceStable(list, func(i, j int) bool { return pos[list[i]] > pos[list[j]] })
		for _, d := range list {
			b.WriteString(" ")
			b.WriteString(nodes[d].mod.Path)
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// LoadOrder returns the paths of mods, one per line, in the given order
// (Result.Modules is in load order): the modules.load file our init reads.
func LoadOrder(mods []Module) []byte {
	var b strings.Builder
	for _, m := range mods {
		b.WriteString(m.Path)
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// ModulesSoftdep returns a modules.softdep in the format depmod writes, for
// the modules among mods that have softdeps, sorted by name:
//
//	# Soft dependencies extracted from modules themselves.
//	softdep genet pre: mdio_bcm_unimac
func ModulesSoftdep(mods []Module) []byte {
	sorted := append([]Module(nil), mods...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var b strings.Builder
	b.WriteString("# Soft dependencies extracted from modules themselves.\n")
	for _, m := range sorted {
		if len(m.SoftPre) == 0 && len(m.SoftPost) == 0 {
			continue
		}
		fmt.Fprintf(&b, "softdep %s", m.Name)
		if len(m.SoftPre) > 0 {
			fmt.Fprintf(&b, " pre: %s", strings.Join(m.SoftPre, " "))
		}
		if len(m.SoftPost) > 0 {
			fmt.Fprintf(&b, " post: %s", strings.Join(m.SoftPost, " "))
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}
