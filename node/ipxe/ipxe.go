// Package ipxe interprets the commonly used subset of the iPXE script
// language, so that a ramboot Pi can follow the same boot scripts that PCs
// netbooting with iPXE use.
//
// Supported: the #!ipxe header, # comments, :labels, goto, set, clear,
// isset, iseq, echo, sleep, exit, shell, kernel, initrd, imgargs, imgfree,
// boot and chain, with iPXE's "||", "&&" and ";" command chaining and
// ${var} / ${var:type} expansion. dhcp, ifopen, ifconf, ifstat and console
// are accepted as no-ops (the init has already configured the network);
// prompt always fails (there is no interactive console).
//
// As in iPXE, a failing command aborts the script unless it is followed
// by "||"; variables are expanded on the whole line before it is split on
// whitespace; unknown variables expand to the empty string; a chained
// script that ends without booting returns to the script that chained it.
//
// Run does not boot anything: it returns the kexec.Image the script
// loaded, for the caller to kexec.
package ipxe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/ramboot/ramboot/node/kexec"
)

// Limits.
const (
	// MaxSteps bounds the number of command lines one Run executes,
	// across chained scripts, so that goto loops terminate.
	MaxSteps = 10000
	// MaxChainDepth bounds nesting of chained scripts.
	MaxChainDepth = 8
	// MaxLine bounds the length of a line after variable expansion.
	MaxLine = 16 << 10
	// MaxVarBytes bounds the total size of variables set by scripts.
	MaxVarBytes = 1 << 20
)

// Sentinel errors; Run's errors wrap them where applicable.
var (
	// ErrNotScript: the data does not start with "#!ipxe".
	ErrNotScript = errors.New("not an iPXE script: does not start with #!ipxe")
	// ErrShell: the script ran the shell command; give the provisioning shell.
	ErrShell = errors.New("script requested the shell")
	// ErrExit: the top-level script ran exit before booting.
	ErrExit = errors.New("script exited without booting")
	// ErrNoBoot: the top-level script ended without booting.
	ErrNoBoot = errors.New("script ended without booting")
	// ErrNoKernel: boot was reached with no kernel loaded.
	ErrNoKernel = errors.New("no kernel loaded")
	// ErrLoop: MaxSteps (or MaxChainDepth) was exceeded.
	ErrLoop = errors.New("script loops")
)

// Fetcher fetches the contents of a URL.
type Fetcher interface {
	Fetch(ctx context.Context, url string) ([]byte, error)
}

// FetcherFunc adapts a function to Fetcher.
type FetcherFunc func(ctx context.Context, url string) ([]byte, error)

// Fetch calls f.
func (f FetcherFunc) Fetch(ctx context.Context, url string) ([]byte, error) { return f(ctx, url) }

// image is a fetched kernel or initrd.
type image struct {
	// Name is the iPXE image name: --name, or the last path element of URL.
	Name string
	// URL is the absolute URL the image was fetched from.
	URL string
	// Args is the image's command line (kernel URL args..., imgargs).
	Args string
	Data []byte
}

// IsScript reports whether b starts with the "#!ipxe" signature followed
// by whitespace or the end of the data.
func IsScript(b []byte) bool {
	const sig = "#!ipxe"
	if !bytes.HasPrefix(b, []byte(sig)) {
		return false
	}
	return len(b) == len(sig) || strings.IndexByte(" \t\r\n", b[len(sig)]) >= 0
}

// sleep is replaced in tests.
var sleep = func(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run interprets script, whose URL is base (used to resolve relative URLs;
// may be nil if the script only uses absolute URLs). env supplies the
// variables (mac, ip, netmask, gateway, hostname, serial, next-server,
// filename, 224, ramboot-224, ...); it is not modified. Script output
// (echo, fetch progress) goes to out, which may be nil.
//
// Run returns a kexec.Image when the script reaches boot (or chains to a
// non-script image). Otherwise it returns an error naming the line:
// wrapping ErrShell if the script asked for the shell, ErrExit/ErrNoBoot
// if it exited or ended without booting, ErrLoop if it did not terminate
// within MaxSteps, or the failing command's error.
func Run(ctx context.Context, script []byte, base *url.URL, env map[string]string, f Fetcher, out io.Writer) (*kexec.Image, error) {
	if !IsScript(script) {
		return nil, ErrNotScript
	}
	if out == nil {
		out = io.Discard
	}
	in := &interp{ctx: ctx, f: f, out: out, vars: make(map[string]string, len(env))}
	for k, v := range env {
		in.vars[k] = v
	}
	end, err := in.runScript(parseScript(script, base), 0)
	if err != nil {
		return nil, err
	}
	switch end.kind {
	case endBoot:
		return end.plan, nil
	case endExit:
		return nil, fmt.Errorf("line %d: exit %d: %w", end.line, end.code, ErrExit)
	default:
		return nil, fmt.Errorf("line %d: %w", end.line, ErrNoBoot)
	}
}

type line struct {
	num   int    // 1-based line number of the first physical line
	text  string // trimmed text, continuation lines joined
	label string // for ":label" lines
}

type script struct {
	base  *url.URL
	lines []line
}

// parseScript splits a script into logical lines, joining lines that end
// in a backslash as iPXE does.
func parseScript(b []byte, base *url.URL) *script {
	s := &script{base: base}
	phys := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i := 0; i < len(phys); i++ {
		num := i + 1
		text := strings.TrimRight(phys[i], "\r")
		for strings.HasSuffix(text, `\`) && i+1 < len(phys) {
			i++
			text = text[:len(text)-1] + strings.TrimRight(phys[i], "\r")
		}
		text = strings.TrimSpace(text)
		l := line{num: num, text: text}
		if strings.HasPrefix(text, ":") {
			f := strings.Fields(text[1:])
			if len(f) > 0 {
				l.label = f[0]
			}
			l.text = ""
		}
		s.lines = append(s.lines, l)
	}
	return s
}

func (s *script) findLabel(label string) (int, bool) {
	for i, l := range s.lines {
		if l.label == label {
			return i, true
		}
	}
	return 0, false
}

type interp struct {
	ctx   context.Context
	f     Fetcher
	out   io.Writer
	vars  map[string]string
	steps int
	// varBytes approximates the bytes held by variables set by scripts.
	varBytes int
	kernel   *image
	initrds  []image
}

type endKind int

const (
	endEOF endKind = iota
	endExit
	endBoot
)

type ending struct {
	kind endKind
	line int
	code int
	plan *kexec.Image
}

// fatalError aborts all scripts, including chaining ones; "||" does not
// catch it.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func isFatal(err error) bool {
	var f *fatalError
	return errors.As(err, &f)
}

// control is what a command asks the script runner to do next.
type control int

const (
	next       control = iota
	jump               // goto: pc set in cmdResult.pc
	exitScript         // exit: code in cmdResult.code
	boot               // boot: plan in cmdResult.plan
)

type cmdResult struct {
	ctl  control
	pc   int
	code int
	plan *kexec.Image
}

func (in *interp) runScript(sc *script, depth int) (ending, error) {
	last := 0
	for pc := 0; pc < len(sc.lines); {
		l := sc.lines[pc]
		last = l.num
		pc++
		if l.text == "" || l.text[0] == '#' {
			continue
		}
		if err := in.ctx.Err(); err != nil {
			return ending{}, fmt.Errorf("line %d: %w", l.num, &fatalError{err})
		}
		in.steps++
		if in.steps > MaxSteps {
			return ending{}, fmt.Errorf("line %d: %w", l.num, &fatalError{fmt.Errorf("%w (more than %d steps)", ErrLoop, MaxSteps)})
		}
		res, err := in.execLine(sc, l, depth)
		if err != nil {
			return ending{}, fmt.Errorf("line %d: %w", l.num, err)
		}
		switch res.ctl {
		case jump:
			pc = res.pc
		case exitScript:
			return ending{kind: endExit, line: l.num, code: res.code}, nil
		case boot:
			return ending{kind: endBoot, line: l.num, plan: res.plan}, nil
		}
	}
	return ending{kind: endEOF, line: last}, nil
}

// execLine runs one logical line: expand, split into words, then run the
// commands separated by "||", "&&" and ";". It returns the error of the
// last command run, if that failed.
func (in *interp) execLine(sc *script, l line, depth int) (cmdResult, error) {
	expanded := in.expand(l.text)
	if len(expanded) > MaxLine {
		return cmdResult{}, fmt.Errorf("line longer than %d bytes after expansion", MaxLine)
	}
	words := strings.Fields(expanded)
	for i, w := range words {
		if strings.HasPrefix(w, "#") {
			words = words[:i]
			break
		}
	}
	if len(words) == 0 {
		return cmdResult{}, nil // e.g. a line that expanded to nothing
	}
	var err error
	process := true
	for {
		n := 0
		for n < len(words) && !isTerminator(words[n]) {
			n++
		}
		if n == 0 {
			return cmdResult{}, fmt.Errorf("syntax error: missing command before %q", words[0])
		}
		if process {
			var res cmdResult
			res, err = in.exec(sc, words[:n], depth)
			if err != nil && isFatal(err) {
				return cmdResult{}, err
			}
			if err == nil && res.ctl != next {
				return res, nil // goto/exit/boot end the line
			}
		}
		if n == len(words) {
			return cmdResult{}, err
		}
		switch words[n] {
		case "||":
			process = err != nil
		case "&&":
			process = err == nil
		default:
			process = true
		}
		if n+1 == len(words) {
			return cmdResult{}, fmt.Errorf("syntax error: missing command after %q", words[n])
		}
		words = words[n+1:]
	}
}

func isTerminator(w string) bool { return w == "||" || w == "&&" || w == ";" }

func (in *interp) exec(sc *script, argv []string, depth int) (cmdResult, error) {
	if len(argv) == 0 {
		return cmdResult{}, errors.New("syntax error: empty command")
	}
	name, args := argv[0], argv[1:]
	fail := func(format string, a ...any) (cmdResult, error) {
		return cmdResult{}, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, a...))
	}
	switch name {
	case "echo":
		nl := "\n"
		if len(args) > 0 && args[0] == "-n" {
			nl, args = "", args[1:]
		}
		fmt.Fprint(in.out, strings.Join(args, " ")+nl)
	case "set":
		if len(args) == 0 {
			return fail("usage: set NAME [VALUE...]")
		}
		k, _, _ := strings.Cut(args[0], ":") // drop a :type suffix
		v := strings.Join(args[1:], " ")
		old, had := in.vars[k]
		size := in.varBytes + len(k) + len(v)
		if had {
			size -= len(k) + len(old)
		}
		if size > MaxVarBytes {
			return fail("variables exceed %d bytes", MaxVarBytes)
		}
		in.vars[k], in.varBytes = v, size
	case "clear":
		if len(args) != 1 {
			return fail("usage: clear NAME")
		}
		k, _, _ := strings.Cut(args[0], ":")
		if old, ok := in.vars[k]; ok {
			in.varBytes = max(0, in.varBytes-len(k)-len(old))
			delete(in.vars, k)
		}
	case "isset":
		if len(args) == 0 {
			return fail("value is not set")
		}
	case "iseq":
		if len(args) != 2 {
			return fail("want 2 arguments, got %d", len(args))
		}
		if args[0] != args[1] {
			return fail("%q != %q", args[0], args[1])
		}
	case "goto":
		if len(args) != 1 {
			return fail("usage: goto LABEL")
		}
		pc, ok := sc.findLabel(args[0])
		if !ok {
			return fail("no label %q", args[0])
		}
		return cmdResult{ctl: jump, pc: pc}, nil
	case "sleep":
		if len(args) != 1 {
			return fail("usage: sleep SECONDS")
		}
		secs, err := strconv.ParseUint(args[0], 10, 32)
		if err != nil {
			return fail("bad duration %q", args[0])
		}
		if err := sleep(in.ctx, time.Duration(secs)*time.Second); err != nil {
			return cmdResult{}, &fatalError{fmt.Errorf("sleep: %w", err)}
		}
	case "exit":
		code := 0
		if len(args) > 1 {
			return fail("usage: exit [CODE]")
		}
		if len(args) == 1 {
			c, err := strconv.ParseUint(args[0], 0, 8)
			if err != nil {
				return fail("bad exit code %q", args[0])
			}
			code = int(c)
		}
		return cmdResult{ctl: exitScript, code: code}, nil
	case "shell":
		return cmdResult{}, &fatalError{ErrShell}
	case "dhcp", "ifopen", "ifconf", "ifstat", "console":
		// Already done by the init / not applicable.
	case "prompt":
		return fail("no interactive console")
	case "imgfree":
		in.kernel, in.initrds = nil, nil
	case "kernel":
		img, err := in.fetchImage(sc, name, args)
		if err != nil {
			return cmdResult{}, err
		}
		in.kernel = img
	case "initrd":
		img, err := in.fetchImage(sc, name, args)
		if err != nil {
			return cmdResult{}, err
		}
		in.initrds = append(in.initrds, *img)
	case "imgargs":
		if len(args) == 0 {
			return fail("usage: imgargs NAME [ARGS...]")
		}
		switch img := in.findImage(args[0]); {
		case img == nil:
			return fail("no image named %q", args[0])
		default:
			img.Args = strings.Join(args[1:], " ")
		}
	case "boot":
		_, rest, err := parseImageOpts(args)
		if err != nil {
			return fail("%v", err)
		}
		if len(rest) > 0 {
			return in.chain(sc, name, args, depth)
		}
		if in.kernel == nil {
			return cmdResult{}, fmt.Errorf("boot: %w", ErrNoKernel)
		}
		return cmdResult{ctl: boot, plan: in.plan()}, nil
	case "chain":
		return in.chain(sc, name, args, depth)
	default:
		return fail("unknown or unsupported command")
	}
	return cmdResult{}, nil
}

func (in *interp) plan() *kexec.Image {
	k := in.kernel
	img := &kexec.Image{
		Kernel:  k.Data,
		Source:  k.URL,
		Name:    k.Name,
		Cmdline: k.Args,
	}
	for _, i := range in.initrds {
		img.Initrds = append(img.Initrds, kexec.Initrd{Name: i.Name, URL: i.URL, Args: i.Args, Data: i.Data})
	}
	return img
}

func (in *interp) findImage(name string) *image {
	if in.kernel != nil && in.kernel.Name == name {
		return in.kernel
	}
	for i := range in.initrds {
		if in.initrds[i].Name == name {
			return &in.initrds[i]
		}
	}
	return nil
}

// chain fetches a URL; a script is run (and may return here), anything
// else is booted as a kernel with the initrds loaded so far.
func (in *interp) chain(sc *script, name string, args []string, depth int) (cmdResult, error) {
	img, err := in.fetchImage(sc, name, args)
	if err != nil {
		return cmdResult{}, err
	}
	if !IsScript(img.Data) {
		in.kernel = img
		return cmdResult{ctl: boot, plan: in.plan()}, nil
	}
	if depth+1 > MaxChainDepth {
		return cmdResult{}, &fatalError{fmt.Errorf("%s %s: %w (chained scripts nested more than %d deep)", name, img.URL, ErrLoop, MaxChainDepth)}
	}
	u, _ := url.Parse(img.URL) // fetchImage produced it from a url.URL
	end, err := in.runScript(parseScript(img.Data, u), depth+1)
	if err != nil {
		if isFatal(err) {
			return cmdResult{}, &fatalError{fmt.Errorf("%s %s: %w", name, img.URL, err)}
		}
		return cmdResult{}, fmt.Errorf("%s %s: %w", name, img.URL, err)
	}
	switch {
	case end.kind == endBoot:
		return cmdResult{ctl: boot, plan: end.plan}, nil
	case end.kind == endExit && end.code != 0:
		return cmdResult{}, fmt.Errorf("%s %s: line %d: exit %d", name, img.URL, end.line, end.code)
	}
	return cmdResult{}, nil
}

type imageOpts struct {
	name string
}

// parseImageOpts parses the options shared by iPXE's image commands
// (--name/-n NAME, --timeout/-t MS, --autofree/-a, --replace/-r).
func parseImageOpts(args []string) (imageOpts, []string, error) {
	var o imageOpts
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		opt, val, hasVal := strings.Cut(args[0], "=")
		args = args[1:]
		switch opt {
		case "--autofree", "-a", "--replace", "-r":
			if hasVal {
				return o, nil, fmt.Errorf("option %s takes no value", opt)
			}
		case "--name", "-n", "--timeout", "-t":
			if !hasVal {
				if len(args) == 0 {
					return o, nil, fmt.Errorf("option %s needs a value", opt)
				}
				val, args = args[0], args[1:]
			}
			if opt == "--name" || opt == "-n" {
				o.name = val
			}
		case "--":
			return o, args, nil
		default:
			return o, nil, fmt.Errorf("unknown option %s", opt)
		}
	}
	return o, args, nil
}

// fetchImage handles "CMD [options] URL [args...]".
func (in *interp) fetchImage(sc *script, name string, args []string) (*image, error) {
	o, rest, err := parseImageOpts(args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("%s: missing URL", name)
	}
	u, err := resolve(sc.base, rest[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	us := u.String()
	fmt.Fprintf(in.out, "%s...", us)
	data, err := in.f.Fetch(in.ctx, us)
	if err != nil {
		fmt.Fprintf(in.out, " %v\n", err)
		if ctxErr := in.ctx.Err(); ctxErr != nil {
			return nil, &fatalError{fmt.Errorf("%s %s: %w", name, us, ctxErr)}
		}
		return nil, fmt.Errorf("%s %s: %w", name, us, err)
	}
	fmt.Fprintf(in.out, " ok\n")
	img := &image{Name: o.name, URL: us, Args: strings.Join(rest[1:], " "), Data: data}
	if img.Name == "" {
		img.Name = path.Base(u.Path)
		if img.Name == "/" || img.Name == "." {
			img.Name = us
		}
	}
	return img, nil
}

// resolve resolves ref against base as RFC 3986 (and iPXE) do.
func resolve(base *url.URL, ref string) (*url.URL, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %v", ref, err)
	}
	if u.IsAbs() {
		return u, nil
	}
	if base == nil {
		return nil, fmt.Errorf("relative URL %q but the script has no base URL", ref)
	}
	return base.ResolveReference(u), nil
}
