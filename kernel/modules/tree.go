package modules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ramboot/ramboot/internal/atomicfile"
	"github.com/ramboot/ramboot/internal/textdist"
)

// compressionSuffixes are the module file suffixes Open recognises after ".ko".
var compressionSuffixes = []string{"", ".xz", ".zst", ".gz"}

// Tree is a kernel module tree (the contents of /lib/modules/<kver>/). It is
// safe for concurrent use.
type Tree struct {
	root    string
	byName  map[string][]*entry // normalised module name → files (more than one is an error when used)
	byPlain map[string]*entry   // Module.Path → file
	builtin map[string]bool     // names from modules.builtin

	// Aliases of built-in modules, from modules.builtin.modinfo.
	builtinExact    map[string][]string
	builtinPatterns []builtinPattern

	// Aliases of loadable modules, filled once by scanAliases, from
	// aliasCache when it matches the tree (SetAliasCache).
	aliasCache    string
	aliasOnce     sync.Once
	aliasErr      error
	aliasExact    map[string][]*entry
	aliasPatterns []aliasPattern
}

type entry struct {
	name  string // normalised module name, from the file name
	file  string // path relative to the root, with slashes, as on disk
	plain string // file without the compression suffix
	size  int64  // the file's, for the alias cache

	once sync.Once
	mod  Module
	err  error
}

type aliasPattern struct {
	pattern string // normalised
	e       *entry
}

type builtinPattern struct {
	pattern string // normalised
	name    string
}

// Open indexes the module files (*.ko, *.ko.xz, *.ko.zst, *.ko.gz) under
// root, which is laid out like /lib/modules/<kver>/, and reads
// modules.builtin and modules.builtin.modinfo if they are there. Module
// files themselves are read later, when needed.
func Open(root string) (*Tree, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("kernel module tree: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("kernel module tree %s is not a directory", root)
	}
	t := &Tree{
		root:         root,
		byName:       map[string][]*entry{},
		byPlain:      map[string]*entry{},
		builtin:      map[string]bool{},
		builtinExact: map[string][]string{},
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		base := d.Name()
		stem, ok := moduleStem(base)
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := &entry{
			name:  NormalizeName(stem),
			file:  rel,
			plain: path.Join(path.Dir(rel), stem+".ko"),
			size:  info.Size(),
		}
		if other, dup := t.byPlain[e.plain]; dup {
			return fmt.Errorf("kernel module tree %s has both %s and %s", root, other.file, e.file)
		}
		t.byPlain[e.plain] = e
		t.byName[e.name] = append(t.byName[e.name], e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("indexing kernel module tree: %w", err)
	}
	if err := t.readBuiltin(); err != nil {
		return nil, err
	}
	if len(t.byName) == 0 && len(t.builtin) == 0 {
		return nil, fmt.Errorf("no kernel modules (*.ko, *.ko.xz, *.ko.zst, *.ko.gz) under %s: expected the contents of lib/modules/<kver>/ (usr/lib/modules/<kver>/ in Debian packages)", root)
	}
	return t, nil
}

// moduleStem returns the file name without ".ko" and compression suffix.
func moduleStem(base string) (string, bool) {
	for _, s := range compressionSuffixes {
		if stem, ok := strings.CutSuffix(base, ".ko"+s); ok && stem != "" {
			return stem, true
		}
	}
	return "", false
}

func (t *Tree) readBuiltin() error {
	data, err := os.ReadFile(filepath.Join(t.root, "modules.builtin"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if stem, ok := moduleStem(path.Base(line)); ok {
			t.builtin[NormalizeName(stem)] = true
		}
	}
	// modules.builtin.modinfo: NUL-separated "module.key=value".
	data, err = os.ReadFile(filepath.Join(t.root, "modules.builtin.modinfo"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for field := range bytes.SplitSeq(data, []byte{0}) {
		mod, rest, ok := strings.Cut(string(field), ".")
		if !ok {
			continue
		}
		alias, ok := strings.CutPrefix(rest, "alias=")
		if !ok || alias == "" {
			continue
		}
		mod, alias = NormalizeName(mod), normalizeAlias(alias)
		if isPattern(alias) {
			t.builtinPatterns = append(t.builtinPatterns, builtinPattern{alias, mod})
		} else if !slices.Contains(t.builtinExact[alias], mod) {
			t.builtinExact[alias] = append(t.builtinExact[alias], mod)
		}
	}
	return nil
}

// load reads, decompresses and parses the module file, once.
func (t *Tree) load(e *entry) (Module, error) {
	e.once.Do(func() {
		data, err := os.ReadFile(filepath.Join(t.root, filepath.FromSlash(e.file)))
		if err != nil {
			e.err = err
			return
		}
		_, plain, err := Decompress(e.file, data)
		if err != nil {
			e.err = err
			return
		}
		m, err := ReadModInfo(plain)
		if err != nil {
			e.err = fmt.Errorf("%s: %w", e.file, err)
			return
		}
		if m.Name == "" {
			m.Name = e.name
		} else if m.Name != e.name {
			e.err = fmt.Errorf("%s: .modinfo says the module is named %q, not %q", e.file, m.Name, e.name)
			return
		}
		m.Path = e.plain
		e.mod = m
	})
	return e.mod, e.err
}

// SetAliasCache names a file that keeps every module's aliases between
// runs: resolving an alias (a softdep such as ext4's "crc32c") needs the
// aliases of the whole tree, and reading them decompresses every module
// (thousands: most of a warm build's time). The file is used when it
// lists exactly the tree's files at their sizes, and written after a
// scan otherwise (best effort). Call it before Closure.
func (t *Tree) SetAliasCache(file string) { t.aliasCache = file }

// aliasCacheFile is the alias cache's format.
type aliasCacheFile struct {
	Format  int `json:"format"`
	Modules []struct {
		File    string   `json:"file"`
		Size    int64    `json:"size"`
		Aliases []string `json:"aliases,omitempty"`
	} `json:"modules"`
}

// readAliasCache returns each module's aliases from the cache, or nil if
// there is none or it does not match the tree.
func (t *Tree) readAliasCache(all []*entry) map[*entry][]string {
	data, err := os.ReadFile(t.aliasCache)
	if err != nil {
		return nil
	}
	var c aliasCacheFile
	if json.Unmarshal(data, &c) != nil || c.Format != 1 || len(c.Modules) != len(all) {
		return nil
	}
	out := make(map[*entry][]string, len(all))
	for i, m := range c.Modules {
		if m.File != all[i].file || m.Size != all[i].size {
			return nil
		}
		out[all[i]] = m.Aliases
	}
	return out
}

// writeAliasCache keeps the scanned aliases for the next run.
func (t *Tree) writeAliasCache(all []*entry) {
	c := aliasCacheFile{Format: 1}
	for _, e := range all {
		c.Modules = append(c.Modules, struct {
			File    string   `json:"file"`
			Size    int64    `json:"size"`
			Aliases []string `json:"aliases,omitempty"`
		}{e.file, e.size, e.mod.Aliases})
	}
	data, err := json.Marshal(c)
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(t.aliasCache), 0o755) == nil {
		atomicfile.Write(t.aliasCache, data, atomicfile.Options{NoSync: true}) //nolint:errcheck // a cache
	}
}

// scanAliases reads every module's aliases, once, in parallel (or from
// the alias cache).
func (t *Tree) scanAliases() error {
	t.aliasOnce.Do(func() {
		all := make([]*entry, 0, len(t.byPlain))
		for _, e := range t.byPlain {
			all = append(all, e)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].file < all[j].file })
		if t.aliasCache != "" {
			if cached := t.readAliasCache(all); cached != nil {
				t.aliasExact = map[string][]*entry{}
				for _, e := range all {
					t.addAliases(e, cached[e])
				}
				return
			}
		}

		work := make(chan *entry)
		var wg sync.WaitGroup
		for range min(runtime.GOMAXPROCS(0), len(all)) {
			wg.Go(func() {
				for e := range work {
					t.load(e) //nolint:errcheck // collected below
				}
			})
		}
		for _, e := range all {
			work <- e
		}
		close(work)
		wg.Wait()

		t.aliasExact = map[string][]*entry{}
		var errs []error
		for _, e := range all {
			m, err := t.load(e)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			t.addAliases(e, m.Aliases)
		}
		if len(errs) > 0 {
			if n := len(errs); n > 5 {
				errs = append(errs[:5], fmt.Errorf("and %d more", n-5))
			}
			t.aliasErr = fmt.Errorf("reading module aliases: %w", errors.Join(errs...))
		} else if t.aliasCache != "" {
			t.writeAliasCache(all)
		}
	})
	return t.aliasErr
}

// addAliases indexes e's aliases.
func (t *Tree) addAliases(e *entry, aliases []string) {
	for _, a := range aliases {
		a = normalizeAlias(a)
		if isPattern(a) {
			t.aliasPatterns = append(t.aliasPatterns, aliasPattern{a, e})
		} else {
			t.aliasExact[a] = append(t.aliasExact[a], e)
		}
	}
}

// lookup resolves a module name or alias, like modprobe: a module file name
// first, then modules.builtin, then the aliases of loadable modules (exact
// matches, else glob patterns), then the aliases of built-in modules. It
// returns the matching files (sorted by name), or builtin, or neither.
func (t *Tree) lookup(name string) (es []*entry, builtin bool, err error) {
	n := NormalizeName(name)
	if es := t.byName[n]; len(es) > 0 {
		if len(es) > 1 {
			var files []string
			for _, e := range es {
				files = append(files, e.file)
			}
			sort.Strings(files)
			return nil, false, fmt.Errorf("module %q is ambiguous: %s", name, strings.Join(files, ", "))
		}
		return es, false, nil
	}
	if t.builtin[n] {
		return nil, true, nil
	}
	if err := t.scanAliases(); err != nil {
		return nil, false, err
	}
	a := normalizeAlias(name)
	es = slices.Clone(t.aliasExact[a])
	if len(es) == 0 {
		for _, p := range t.aliasPatterns {
			if globMatch(p.pattern, a) {
				es = append(es, p.e)
			}
		}
	}
	if len(es) > 0 {
		sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
		es = slices.Compact(es)
		for _, e := range es {
			if len(t.byName[e.name]) > 1 {
				_, _, err := t.lookup(e.name)
				return nil, false, err
			}
		}
		return es, false, nil
	}
	if len(t.builtinExact[a]) > 0 {
		return nil, true, nil
	}
	for _, p := range t.builtinPatterns {
		if globMatch(p.pattern, a) {
			return nil, true, nil
		}
	}
	return nil, false, nil
}

// Result is the outcome of Tree.Closure.
type Result struct {
	// Modules is the closure in load order: every module comes after all
	// of its depends and softdep "pre:" modules.
	Modules []Module
	// Builtin lists the requested names and softdep names that are built
	// into the kernel (modules.builtin or the aliases of built-in modules):
	// there is nothing to load for them. Sorted, normalised.
	Builtin []string
	// IgnoredSoftdeps lists softdep "pre:" names found nowhere in the tree,
	// as "module: name"; modprobe ignores those too. Sorted.
	IgnoredSoftdeps []string
}

// Closure returns the named modules together with everything they need
// (depends and softdep "pre:", recursively) in load order. Names may be
// module names ('-' and '_' are the same), or aliases such as "fs-overlay".
// Names built into the kernel are reported in Result.Builtin. Softdep
// "post:" modules are not included. Ties in the load order are broken by
// name, so the result is deterministic.
//
// Unknown names yield an *UnknownError naming them all. A hard depends= on
// a module that is not in the tree, or a cycle of hard depends, is an
// error; cycles through softdeps are broken.
func (t *Tree) Closure(names []string) (*Result, error) {
	res := &Result{}
	builtin := map[string]bool{}
	ignored := map[string]bool{}
	nodes := map[string]*node{}
	var queue []*entry
	add := func(es []*entry) {
		for _, e := range es {
			if nodes[e.name] == nil {
				nodes[e.name] = &node{}
				queue = append(queue, e)
			}
		}
	}

	var unknown []string
	for _, name := range names {
		es, bi, err := t.lookup(name)
		switch {
		case err != nil:
			return nil, err
		case bi:
			builtin[NormalizeName(name)] = true
		case len(es) == 0:
			if !slices.Contains(unknown, name) {
				unknown = append(unknown, name)
			}
		default:
			add(es)
		}
	}
	if len(unknown) > 0 {
		return nil, t.unknownError(unknown)
	}

	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		m, err := t.load(e)
		if err != nil {
			return nil, err
		}
		nd := nodes[e.name]
		nd.mod = m
		for _, d := range m.Depends {
			es := t.byName[d]
			switch {
			case len(es) == 1:
				nd.hard = appendUnique(nd.hard, d)
				add(es)
			case len(es) > 1:
				_, _, err := t.lookup(d)
				return nil, err
			default:
				return nil, fmt.Errorf("module %s (%s) depends on %q, which is not in the tree %s", m.Name, m.Path, d, t.root)
			}
		}
		for _, s := range m.SoftPre {
			es, bi, err := t.lookup(s)
			switch {
			case err != nil:
				return nil, fmt.Errorf("softdep of %s: %w", m.Name, err)
			case bi:
				builtin[s] = true
			case len(es) == 0:
				ignored[m.Name+": "+s] = true
			}
			for _, d := range es {
				if d.name != e.name {
					nd.soft = appendUnique(nd.soft, d.name)
				}
			}
			add(es)
		}
	}

	order, err := topoSort(nodes)
	if err != nil {
		return nil, err
	}
	for _, n := range order {
		res.Modules = append(res.Modules, nodes[n].mod)
	}
	res.Builtin = sortedKeys(builtin)
	res.IgnoredSoftdeps = sortedKeys(ignored)
	return res, nil
}

// ReadPlain returns the decompressed contents of a module returned by
// Closure, to be written to Module.Path in the initramfs.
func (t *Tree) ReadPlain(m Module) ([]byte, error) {
	e := t.byPlain[m.Path]
	if e == nil {
		return nil, fmt.Errorf("module %s (%q) is not in the tree %s", m.Name, m.Path, t.root)
	}
	data, err := os.ReadFile(filepath.Join(t.root, filepath.FromSlash(e.file)))
	if err != nil {
		return nil, err
	}
	_, plain, err := Decompress(e.file, data)
	return plain, err
}

// UnknownError is returned by Closure for names that are neither modules,
// aliases nor built in.
type UnknownError struct {
	Root        string
	Names       []string            // as given
	Suggestions map[string][]string // name → similar module names
}

func (e *UnknownError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unknown kernel module")
	if len(e.Names) > 1 {
		b.WriteString("s")
	}
	fmt.Fprintf(&b, " in %s:", e.Root)
	for _, n := range e.Names {
		fmt.Fprintf(&b, "\n  %q", n)
		if s := e.Suggestions[n]; len(s) > 0 {
			fmt.Fprintf(&b, ": did you mean %s?", strings.Join(s, ", "))
		} else {
			b.WriteString(": no similar module name")
		}
	}
	b.WriteString("\ncheck the board's modules list: use module names (the file name without .ko*, e.g. \"genet\" for genet.ko.xz) or aliases (e.g. \"fs-overlay\")")
	return b.String()
}

func (t *Tree) unknownError(names []string) error {
	e := &UnknownError{Root: t.root, Names: names, Suggestions: map[string][]string{}}
	var all []string
	for n := range t.byName {
		all = append(all, n)
	}
	for n := range t.builtin {
		all = append(all, n)
	}
	for _, n := range names {
		if s := suggest(NormalizeName(n), all); len(s) > 0 {
			e.Suggestions[n] = s
		}
	}
	return e
}

// suggest returns up to 5 names similar to name: those within a small edit
// distance, and those containing it or contained in it, closest first.
func suggest(name string, all []string) []string {
	type cand struct {
		name string
		dist int
	}
	var cs []cand
	maxDist := 1 + len(name)/4
	for _, n := range all {
		d := textdist.Levenshtein(name, n)
		if d <= maxDist || (len(name) >= 3 && strings.Contains(n, name)) || (len(n) >= 3 && strings.Contains(name, n)) {
			cs = append(cs, cand{n, d})
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].dist != cs[j].dist {
			return cs[i].dist < cs[j].dist
		}
		return cs[i].name < cs[j].name
	})
	var out []string
	for i := 0; i < len(cs) && i < 5; i++ {
		out = append(out, cs[i].name)
	}
	return out
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
