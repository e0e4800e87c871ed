package ipxe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ramboot/ramboot/node/kexec"
)

// fakeFetcher serves a map of URL → body; anything else is a 404.
type fakeFetcher map[string]string

func (f fakeFetcher) Fetch(ctx context.Context, u string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, ok := f[u]
	if !ok {
		return nil, &HTTPError{URL: u, StatusCode: 404, Status: "404 Not Found"}
	}
	return []byte(b), nil
}

func init() {
	// Tests never really sleep.
	sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
}

var testEnv = map[string]string{
	"mac":         "b8:27:eb:01:02:0a",
	"ip":          "10.0.0.50",
	"netmask":     "255.255.255.0",
	"gateway":     "10.0.0.1",
	"hostname":    "pi-a",
	"serial":      "1000000012345678",
	"next-server": "10.0.0.1",
	"filename":    "boot.ipxe",
	"224":         "http://srv/pi/boot.ipxe",
	"ramboot-224": "http://srv/pi/boot.ipxe",
}

const base = "http://srv/pi/boot.ipxe"

// plan is a comparable summary of a kexec.Image.
type plan struct {
	Kernel, Source, Name, Cmdline string
	Initrds                       []string // "URL|data|args"
}

func summarize(p *kexec.Image) *plan {
	if p == nil {
		return nil
	}
	s := &plan{Kernel: string(p.Kernel), Source: p.Source, Name: p.Name, Cmdline: p.Cmdline}
	for _, i := range p.Initrds {
		s.Initrds = append(s.Initrds, i.URL+"|"+string(i.Data)+"|"+i.Args)
	}
	return s
}

var files = fakeFetcher{
	"http://srv/pi/vmlinuz":                      "KERNEL",
	"http://srv/pi/initrd.img":                   "INITRD",
	"http://srv/common/modules.cpio":             "MODULES",
	"http://srv/abs/fw.cpio":                     "FW",
	"tftp://10.0.0.1/pi/vmlinuz":                 "TFTPKERNEL",
	"http://srv/pi/b8-27-eb-01-02-0a/k":          "MACKERNEL",
	"http://srv/pi/serial/1000000012345678.ipxe": "#!ipxe\nkernel k${hostname} serial\nboot\n",
	"http://srv/pi/serial/kpi-a":                 "SERIALKERNEL",
	"http://srv/pi/exit0.ipxe":                   "#!ipxe\nset from-chain yes\nexit\n",
	"http://srv/pi/exit3.ipxe":                   "#!ipxe\nexit 3\n",
	"http://srv/pi/noboot.ipxe":                  "#!ipxe\necho nothing to do\n",
	"http://srv/pi/self.ipxe":                    "#!ipxe\nchain self.ipxe\n",
	"http://srv/pi/shell.ipxe":                   "#!ipxe\nshell\n",
	"http://srv/pi/bad.ipxe":                     "#!ipxe\n\nfrobnicate\n",
	"http://srv/other/second.ipxe":               "#!ipxe\nkernel vmlinuz-2 root=/dev/nfs\ninitrd ../pi/initrd.img\nboot\n",
	"http://srv/other/vmlinuz-2":                 "KERNEL2",
	"http://srv/pi/vmlinuz-chain":                "CHAINKERNEL",
	"http://srv/pi/script-no-newline.ipxe":       "#!ipxe",
	"http://srv/pi/boot?mac=b8%3A27%3Aeb%3A":     "MACQUERY",
}

func TestRun(t *testing.T) {
	for _, tt := range []struct {
		name    string
		script  string
		env     map[string]string
		want    *plan
		wantErr string // substring
		is      error  // errors.Is target
		wantOut string // substring of the output
	}{
		{
			name: "relative URLs",
			script: `#!ipxe
kernel vmlinuz console=ttyS0,115200 root=/dev/ram0
initrd initrd.img
initrd ../common/modules.cpio
initrd /abs/fw.cpio
boot`,
			want: &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "vmlinuz", Cmdline: "console=ttyS0,115200 root=/dev/ram0",
				Initrds: []string{"http://srv/pi/initrd.img|INITRD|", "http://srv/common/modules.cpio|MODULES|", "http://srv/abs/fw.cpio|FW|"}},
			wantOut: "http://srv/pi/vmlinuz... ok",
		},
		{
			name:   "tftp kernel, http initrd (from u-root's tests), comments, CRLF, blank lines",
			script: "#!ipxe\r\n# a comment\r\n\r\n  kernel tftp://10.0.0.1/pi/vmlinuz quiet # trailing comment\r\ninitrd http://srv/pi/initrd.img\r\nboot\r\n",
			want:   &plan{Kernel: "TFTPKERNEL", Source: "tftp://10.0.0.1/pi/vmlinuz", Name: "vmlinuz", Cmdline: "quiet", Initrds: []string{"http://srv/pi/initrd.img|INITRD|"}},
		},
		{
			name: "variables",
			script: `#!ipxe
set args ip=${ip}::${gateway}:${netmask}:${hostname} unknown=${nope}${net0/nope}
kernel ${mac:hexhyp}/k ${args} mac=${net0/mac} hex=${mac:hexraw} s=${serial} ns=${next-server} fn=${filename} o=${224:string}
boot`,
			want: &plan{Kernel: "MACKERNEL", Source: "http://srv/pi/b8-27-eb-01-02-0a/k", Name: "k",
				Cmdline: "ip=10.0.0.50::10.0.0.1:255.255.255.0:pi-a unknown= mac=b8:27:eb:01:02:0a hex=b827eb01020a s=1000000012345678 ns=10.0.0.1 fn=boot.ipxe o=http://srv/pi/boot.ipxe"},
		},
		{
			name:   "uristring and nested expansion",
			script: "#!ipxe\nset which mac\nkernel /pi/boot?mac=${${which}:uristring} x=${${which}\nboot",
			want:   &plan{Kernel: "MACQUERY", Source: "http://srv/pi/boot?mac=b8%3A27%3Aeb%3A", Name: "boot", Cmdline: "x=${mac"},
			env:    map[string]string{"mac": "b8:27:eb:"},
		},
		{
			name: "labels and goto",
			script: `#!ipxe
goto load
kernel nonexistent
:boot
boot
:load
kernel vmlinuz a
goto boot`,
			want: &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "vmlinuz", Cmdline: "a"},
		},
		{
			name: "isset fallback when serial is missing",
			script: `#!ipxe
isset ${serial} || goto noserial
chain ${serial}.ipxe
:noserial
kernel vmlinuz generic
boot`,
			env:  map[string]string{},
			want: &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "vmlinuz", Cmdline: "generic"},
		},
		{
			name: "isset with serial chains to a per-serial script; its relative URLs use its own URL",
			script: `#!ipxe
isset ${serial} || goto noserial
chain --autofree serial/${serial}.ipxe || goto noserial
:noserial
kernel vmlinuz generic
boot`,
			want: &plan{Kernel: "SERIALKERNEL", Source: "http://srv/pi/serial/kpi-a", Name: "kpi-a", Cmdline: "serial"},
		},
		{
			name: "iseq branches",
			script: `#!ipxe
iseq ${hostname} pi-b && goto b || goto a
:b
kernel vmlinuz b
boot
:a
kernel vmlinuz a
boot`,
			want: &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "vmlinuz", Cmdline: "a"},
		},
		{
			name: "404 caught by ||",
			script: `#!ipxe
kernel missing || goto fallback
boot
:fallback
echo falling back
kernel vmlinuz fb
boot`,
			want:    &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "vmlinuz", Cmdline: "fb"},
			wantOut: "falling back\n",
		},
		{
			name:   "chain to a second script with absolute URL",
			script: "#!ipxe\necho -n one\necho two\nchain http://srv/other/second.ipxe\necho not reached\n",
			want: &plan{Kernel: "KERNEL2", Source: "http://srv/other/vmlinuz-2", Name: "vmlinuz-2", Cmdline: "root=/dev/nfs",
				Initrds: []string{"http://srv/pi/initrd.img|INITRD|"}},
			wantOut: "onetwo\n",
		},
		{
			name:   "chained script that exits returns to the caller, variables are shared",
			script: "#!ipxe\nchain exit0.ipxe\nkernel vmlinuz from-chain=${from-chain}\nboot\n",
			want:   &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "vmlinuz", Cmdline: "from-chain=yes"},
		},
		{
			name:   "chained script that fails is caught by ||",
			script: "#!ipxe\nchain exit3.ipxe || chain bad.ipxe || chain noboot.ipxe && kernel vmlinuz ok\nboot\n",
			want:   &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "vmlinuz", Cmdline: "ok"},
		},
		{
			name:   "chain to a kernel boots it with the loaded initrds",
			script: "#!ipxe\ninitrd initrd.img\nchain vmlinuz-chain console=ttyAMA0\necho not reached\n",
			want: &plan{Kernel: "CHAINKERNEL", Source: "http://srv/pi/vmlinuz-chain", Name: "vmlinuz-chain", Cmdline: "console=ttyAMA0",
				Initrds: []string{"http://srv/pi/initrd.img|INITRD|"}},
		},
		{
			name:   "boot URL is chain",
			script: "#!ipxe\nboot vmlinuz-chain x\n",
			want:   &plan{Kernel: "CHAINKERNEL", Source: "http://srv/pi/vmlinuz-chain", Name: "vmlinuz-chain", Cmdline: "x"},
		},
		{
			name:   "kernel --name and imgargs, initrd args, imgfree",
			script: "#!ipxe\nkernel vmlinuz-chain\nimgfree\nkernel --name linux vmlinuz old\ninitrd -n=rd initrd.img /initrd.img mode=644\nimgargs linux new args\nimgargs rd\nboot\n",
			want: &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "linux", Cmdline: "new args",
				Initrds: []string{"http://srv/pi/initrd.img|INITRD|"}},
		},
		{
			name:   "line continuation, no-op commands, set/clear, sleep, ;",
			script: "#!ipxe\ndhcp && ifopen net0 ; ifstat\nset x 1\nclear x\nsleep 5\nkernel vmlinuz \\\n  a=${x} \\\n  b\nboot\n",
			want:   &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "vmlinuz", Cmdline: "a= b"},
		},
		{
			name:   "prompt fails without console",
			script: "#!ipxe\nprompt --timeout 2000 Press a key && shell || kernel vmlinuz\nboot\n",
			want:   &plan{Kernel: "KERNEL", Source: "http://srv/pi/vmlinuz", Name: "vmlinuz"},
		},

		// Errors.
		{name: "not a script", script: "kernel vmlinuz\nboot\n", is: ErrNotScript, wantErr: "not an iPXE script"},
		{name: "header needs a separator", script: "#!ipxeX\n", is: ErrNotScript},
		{name: "garbage command", script: "#!ipxe\n\nfrobnicate the kernel\nboot\n", wantErr: "line 3: frobnicate: unknown or unsupported command"},
		{name: "garbage binary", script: "#!ipxe\n\x00\x01\x02 \xff\n", wantErr: "line 2: \x00\x01\x02: unknown"},
		{
			name:    "boot without kernel",
			script:  "#!ipxe\n# comment\n\n\n\n\nboot\n",
			wantErr: "line 7: boot: no kernel loaded", is: ErrNoKernel,
		},
		{name: "404 not caught", script: "#!ipxe\nkernel missing\nboot\n", wantErr: "line 2: kernel http://srv/pi/missing: GET http://srv/pi/missing: 404 Not Found"},
		{name: "loop", script: "#!ipxe\n:a\necho spin\ngoto a\n", wantErr: "script loops (more than 10000 steps)", is: ErrLoop},
		{name: "loop through ||", script: "#!ipxe\n:a\nkernel missing || goto a\n", is: ErrLoop},
		{name: "chain loop", script: "#!ipxe\nchain self.ipxe || echo caught\n", is: ErrLoop, wantErr: "chained scripts nested more than 8 deep"},
		{name: "ends without boot", script: "#!ipxe\nkernel vmlinuz\necho done\n", wantErr: "line 3: script ended without booting", is: ErrNoBoot},
		{name: "empty script", script: "#!ipxe", wantErr: "line 1: script ended without booting", is: ErrNoBoot},
		{name: "exit", script: "#!ipxe\nkernel vmlinuz\nexit 2\nboot\n", wantErr: "line 3: exit 2: script exited", is: ErrExit},
		{name: "shell", script: "#!ipxe\nshell || kernel vmlinuz\nboot\n", wantErr: "line 2: script requested the shell", is: ErrShell},
		{name: "shell in chained script is not caught", script: "#!ipxe\nchain shell.ipxe || goto x\n:x\n", is: ErrShell, wantErr: "line 2: chain http://srv/pi/shell.ipxe: line 2: script requested the shell"},
		{name: "failing chained script", script: "#!ipxe\nchain bad.ipxe\n", wantErr: "line 2: chain http://srv/pi/bad.ipxe: line 3: frobnicate: unknown"},
		{name: "chained script exits non-zero", script: "#!ipxe\nchain exit3.ipxe\n", wantErr: "line 2: chain http://srv/pi/exit3.ipxe: line 2: exit 3"},
		{name: "goto missing label", script: "#!ipxe\ngoto nowhere\n", wantErr: `line 2: goto: no label "nowhere"`},
		{name: "isset fails the script without ||", script: "#!ipxe\nisset ${nope} && kernel vmlinuz\nboot\n", wantErr: "line 2: isset: value is not set"},
		{name: "iseq arity", script: "#!ipxe\niseq ${nope} x\n", wantErr: "line 2: iseq: want 2 arguments, got 1"},
		{name: "dangling ||", script: "#!ipxe\nkernel vmlinuz ||\n", wantErr: `line 2: syntax error: missing command after "||"`},
		{name: "leading &&", script: "#!ipxe\n&& boot\n", wantErr: `line 2: syntax error: missing command before "&&"`},
		{name: "kernel without URL", script: "#!ipxe\nkernel\n", wantErr: "line 2: kernel: missing URL"},
		{name: "bad option", script: "#!ipxe\nkernel --frob vmlinuz\n", wantErr: "line 2: kernel: unknown option --frob"},
		{name: "option without value", script: "#!ipxe\ninitrd --name\n", wantErr: "line 2: initrd: option --name needs a value"},
		{name: "imgargs unknown image", script: "#!ipxe\nimgargs vmlinuz x\n", wantErr: `line 2: imgargs: no image named "vmlinuz"`},
		{name: "sleep syntax", script: "#!ipxe\nsleep soon\n", wantErr: `line 2: sleep: bad duration "soon"`},
		{name: "exit syntax", script: "#!ipxe\nexit 1 2\n", wantErr: "line 2: exit: usage"},
		{name: "set syntax", script: "#!ipxe\nset\n", wantErr: "line 2: set: usage"},
		{name: "bad URL", script: "#!ipxe\nkernel http://[::1\n", wantErr: "line 2: kernel: bad URL"},
		{name: "line too long", script: "#!ipxe\nset a " + strings.Repeat("x", 9000) + "\necho ${a}${a}\n", wantErr: "line 3: line longer than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = testEnv
			}
			want := tt.want
			var out bytes.Buffer
			got, err := Run(context.Background(), []byte(tt.script), mustURL(base), env, files, &out)
			if tt.wantErr != "" || tt.is != nil {
				if err == nil {
					t.Fatalf("Run() = %+v, want error %q", summarize(got), tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Run() error = %q, want it to contain %q", err, tt.wantErr)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("Run() error = %q, want errors.Is(%v)", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run(): %v\noutput:\n%s", err, out.String())
			}
			if d := cmp.Diff(want, summarize(got)); d != "" {
				t.Errorf("Run() plan (-want +got):\n%s", d)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output %q does not contain %q", out.String(), tt.wantOut)
			}
		})
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestRunDoesNotModifyEnv(t *testing.T) {
	env := map[string]string{"a": "1"}
	Run(context.Background(), []byte("#!ipxe\nset a 2\nset b 3\n"), nil, env, files, nil)
	if d := cmp.Diff(map[string]string{"a": "1"}, env); d != "" {
		t.Errorf("env modified (-want +got):\n%s", d)
	}
}

func TestRunNoBase(t *testing.T) {
	_, err := Run(context.Background(), []byte("#!ipxe\nkernel vmlinuz\n"), nil, nil, files, nil)
	if err == nil || !strings.Contains(err.Error(), `line 2: kernel: relative URL "vmlinuz" but the script has no base URL`) {
		t.Errorf("Run() error = %v", err)
	}
	p, err := Run(context.Background(), []byte("#!ipxe\nkernel http://srv/pi/vmlinuz\nboot"), nil, nil, files, nil)
	if err != nil || string(p.Kernel) != "KERNEL" {
		t.Errorf("Run() = %v, %v", p, err)
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, []byte("#!ipxe\nkernel vmlinuz || goto x\n:x\n"), mustURL(base), nil, files, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run() error = %v, want context.Canceled", err)
	}
	// A fetch that fails because the context ends is not caught by ||.
	ctx, cancel = context.WithCancel(context.Background())
	f := FetcherFunc(func(context.Context, string) ([]byte, error) { cancel(); return nil, errors.New("aborted") })
	_, err = Run(ctx, []byte("#!ipxe\nkernel vmlinuz || goto x\n:x\n"), mustURL(base), nil, f, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run() error = %v, want context.Canceled", err)
	}
}

func TestVariableLimit(t *testing.T) {
	// Doubling a variable hits MaxLine; a new variable per step hits MaxVarBytes.
	_, err := Run(context.Background(), []byte("#!ipxe\nset a xxxxxxxxxxxxxxxx\n:l\nset a ${a}${a}\ngoto l\n"), nil, nil, files, nil)
	if err == nil || !strings.Contains(err.Error(), "line 4: line longer than") {
		t.Errorf("Run() error = %v", err)
	}
	script := "#!ipxe\nset big " + strings.Repeat("y", 8000) + "\nset n x\n:l\nset n ${n}x\nset v${n} ${big}\ngoto l\n"
	_, err = Run(context.Background(), []byte(script), nil, nil, files, nil)
	if err == nil || !strings.Contains(err.Error(), "set: variables exceed") {
		t.Errorf("Run() error = %v", err)
	}
}

func TestExpand(t *testing.T) {
	in := &interp{vars: map[string]string{"mac": "B8:27:EB:01:02:0A", "mac:hexhyp": "override", "x": "mac", "hn": "a b/c", "loop": "${loop}"}}
	for s, want := range map[string]string{
		"":                       "",
		"plain":                  "plain",
		"${mac}":                 "B8:27:EB:01:02:0A",
		"${mac:hexhyp}":          "override",
		"${net0/mac:hex}":        "b8:27:eb:01:02:0a",
		"${netX/mac:hexraw}":     "b827eb01020a",
		"${hn:hex}":              "61:20:62:2f:63",
		"${hn:uristring}":        "a%20b%2Fc",
		"${hn:string}":           "a b/c",
		"${${x}:hexraw}":         "b827eb01020a",
		"${unknown}-${}":         "-",
		"$${x}}":                 "$mac}",
		"${x":                    "${x",
		"${a${x}":                "${amac",
		"${loop}":                "${loop}", // values are not re-expanded
		"${mac:no-such-type}":    "B8:27:EB:01:02:0A",
		"{x} $x ${ x}":           "{x} $x ",
		"${x}${x}":               "macmac",
		"http://h/${x}.ipxe#${}": "http://h/mac.ipxe#",
	} {
		if got := in.expand(s); got != want {
			t.Errorf("expand(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestIsScript(t *testing.T) {
	for s, want := range map[string]bool{"#!ipxe": true, "#!ipxe\n": true, "#!ipxe\r\n": true, "#!ipxe # x": true, "#!ipxex": false, "#!ipx": false, "": false, " #!ipxe": false} {
		if got := IsScript([]byte(s)); got != want {
			t.Errorf("IsScript(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzRun(f *testing.F) {
	for _, s := range []string{
		"#!ipxe\nkernel vmlinuz a\ninitrd initrd.img\nboot\n",
		"#!ipxe\n:a\nisset ${x} || goto a\n",
		"#!ipxe\niseq ${hostname} pi-a && chain exit0.ipxe || goto b\n:b\nchain self.ipxe\n",
		"#!ipxe\nset a ${mac:hexhyp}\\\n${a}\nimgargs vmlinuz ${a}\nsleep 1 ; exit 1",
		"#!ipxe\nkernel --name=k vmlinuz-chain ||\nchain http://srv/other/second.ipxe",
		"#!ipxe\n${${${${}}}}} ${a",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) > 8192 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err := Run(ctx, script, mustURL(base), testEnv, files, nil)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run did not terminate in time")
		}
		if err == nil && (p == nil || p.Kernel == nil) {
			t.Fatalf("Run() = %v, nil: a plan must have a kernel", p)
		}
		if err != nil && p != nil {
			t.Fatalf("Run() returned both a plan and %v", err)
		}
		_ = fmt.Sprint(err)
	})
}
