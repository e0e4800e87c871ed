package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/ramboot/ramboot/internal/textdist"
)

// cliOnly marks a flag that is an action of one command line (--config,
// --check), not a setting: a config file may not hold it.
const cliOnly = "ramboot/cli-only"

// markCLIOnly annotates flags that a config file may not set.
func markCLIOnly(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, cliOnly, []string{"true"}); err != nil {
			panic(err) // a flag name typo in this file
		}
	}
}

// applyConfig reads a YAML config file whose keys are fs's long flag names
// and sets every flag the command line did not (fs must be parsed
// already: the command line wins). It is generic: any flag added to the
// set later is a key without an edit here.
//
//	# /etc/ramboot/serve.yaml
//	root: /srv/ramboot/rpi4
//	interface: eth1
//	nodes: /etc/ramboot/nodes.yaml
//	tftp-max-transfers: 128
//
// Every value is checked against a fresh flag set from newFS (so a key
// the command line overrides is checked too), and every problem is
// reported, each with the file, line and key: an unknown key names the
// nearest flag, a value of the wrong type names the type wanted.
func applyConfig(fs *pflag.FlagSet, newFS func() *pflag.FlagSet, file string) (int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("--config: %w", err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // an empty file sets nothing
			return 0, nil
		}
		return 0, fmt.Errorf("%s: %v", file, err)
	}
	if len(doc.Content) == 0 {
		return 0, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return 0, nil
	}
	if root.Kind != yaml.MappingNode {
		return 0, fmt.Errorf("%s:%d: want a mapping of flag names to values (root: /srv/ramboot/rpi4), not a %s", file, root.Line, kindName(root))
	}
	fresh := newFS()
	fresh.SetOutput(io.Discard)
	var errs []error
	seen := map[string]int{}
	n := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		at := fmt.Sprintf("%s:%d", file, k.Line)
		if l, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("%s: %s is already set on line %d", at, key, l))
			continue
		}
		seen[key] = k.Line
		f := fs.Lookup(key)
		if f == nil {
			errs = append(errs, fmt.Errorf("%s: unknown key %q: did you mean %s? (the keys are the long flag names: ramboot help %s)", at, key, nearestFlag(fs, key), fs.Name()))
			continue
		}
		if _, ok := f.Annotations[cliOnly]; ok {
			errs = append(errs, fmt.Errorf("%s: %s is a command-line action, not a setting: remove it from the file", at, key))
			continue
		}
		vals, err := configValues(f, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %v", at, key, err))
			continue
		}
		ok := true
		for _, s := range vals {
			if err := fresh.Set(key, s); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: want %s, got %q", at, key, typeName(f), s))
				ok = false
				break
			}
		}
		if !ok || fs.Changed(key) {
			continue
		}
		for _, s := range vals {
			if err := fs.Set(key, s); err != nil { // checked above; a flag's own check
				errs = append(errs, fmt.Errorf("%s: %s: %v", at, key, err))
				break
			}
		}
		n++
	}
	if len(errs) > 0 {
		return n, errors.Join(errs...)
	}
	return n, nil
}

// isList reports whether a flag takes a list (repeatable, or comma
// separated on the command line).
func isList(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.HasSuffix(t, "Slice") || strings.HasSuffix(t, "Array")
}

// configValues turns a YAML value into the strings the flag's Set takes:
// one for a scalar, one per item for a list flag.
func configValues(f *pflag.Flag, v *yaml.Node) ([]string, error) {
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return nil, fmt.Errorf("no value: give one (%s) or remove the line", typeName(f))
		}
		if f.Value.Type() == "bool" {
			// YAML's yes/no/on/off as well as true/false.
			switch strings.ToLower(v.Value) {
			case "yes", "on":
				return []string{"true"}, nil
			case "no", "off":
				return []string{"false"}, nil
			}
		}
		// A list flag takes one item here, or the command line's
		// comma-separated form.
		return []string{v.Value}, nil
	case yaml.SequenceNode:
		if !isList(f) {
			return nil, fmt.Errorf("want %s, got a list (line %d)", typeName(f), v.Line)
		}
		var out []string
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
				return nil, fmt.Errorf("line %d: want a list of plain values, got a %s", it.Line, kindName(it))
			}
			out = append(out, it.Value)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("want %s, got a %s (line %d)", typeName(f), kindName(v), v.Line)
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "plain value"
	}
	return "YAML node"
}

// typeName says in words what a flag's value is.
func typeName(f *pflag.Flag) string {
	switch t := f.Value.Type(); t {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64":
		return "an integer"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "a non-negative integer"
	case "float32", "float64":
		return "a number"
	case "duration":
		return "a duration such as 30s, 5m or 12h"
	case "ip":
		return "an IP address"
	case "stringSlice", "stringArray":
		return "a list of strings"
	case "intSlice", "int32Slice", "int64Slice", "uintSlice":
		return "a list of integers"
	default:
		return "a value of type " + t
	}
}

// nearestFlag names the flag closest to a mistyped key: by shorthand,
// with underscores for dashes, then by edit distance.
func nearestFlag(fs *pflag.FlagSet, key string) string {
	if len(key) == 1 {
		if f := fs.ShorthandLookup(key); f != nil {
			return f.Name
		}
	}
	alt := strings.ToLower(strings.NewReplacer("_", "-", " ", "-").Replace(key))
	if f := fs.Lookup(alt); f != nil {
		return f.Name
	}
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[cliOnly]; ok {
			return
		}
		d := textdist.Levenshtein(alt, f.Name)
		// A key that is a part of a flag's name ("max-transfers") is near it.
		if strings.Contains(f.Name, alt) || strings.Contains(alt, f.Name) {
			d = min(d, abs(len(f.Name)-len(alt))/2)
		}
		cs = append(cs, cand{f.Name, d})
	})
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].name < cs[j].name
	})
	if len(cs) == 0 {
		return "(no flags)"
	}
	return cs[0].name
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// configKeys lists the keys a config file may hold, for help text.
func configKeys(fs *pflag.FlagSet) string {
	var ks []string
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[cliOnly]; !ok {
			ks = append(ks, f.Name)
		}
	})
	return strings.Join(ks, ", ")
}
