package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Context{Args: args, Stdout: &out, Stderr: &errb, Version: "v0.0.0-test"}.Execute(context.Background())
	return code, out.String(), errb.String()
}

func TestCLIErrors(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // all must appear in stderr
	}{
		{"no args", nil, 2, []string{"Usage:"}},
		{"unknown command", []string{"bild"}, 2, []string{`unknown command "bild"`, "ramboot build"}},
		{"no board", []string{"build"}, 2, []string{"no board", "--board", "rpi4", "virt"}},
		{"unknown board", []string{"build", "--board", "rpi9", "--src", ".."}, 1, []string{`unknown board "rpi9"`, "cm4, pc, rpi3, rpi4, rpi5, virt"}},
		{"bad flag", []string{"build", "--bord", "rpi4"}, 2, []string{"unknown flag: --bord", "ramboot help build"}},
		{"stray arg", []string{"build", "--board", "rpi4", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{"missing overlay", []string{"build", "--board", "rpi4", "--src", "..", "--overlay", filepath.Join(empty, "nope")}, 1, []string{"overlay", "nope", "no such file"}},
		{"overlay is a file", []string{"build", "--board", "rpi4", "--src", "..", "--overlay", "cli.go"}, 1, []string{"overlay cli.go: not a directory"}},
		{"not the source tree", []string{"build", "--board", "rpi4", "--src", empty}, 1, []string{"not the ramboot source tree", "--src"}},
		{"both kernels", []string{"build", "--board", "rpi4", "--src", "..", "--kernel-deb", "a.deb", "--kernel-dir", "b"}, 1, []string{"--kernel-deb and --kernel-dir both given"}},
		{"missing kernel deb", []string{"build", "--board", "rpi4", "--src", "..", "--cache-dir", empty, "--kernel-deb", filepath.Join(empty, "k.deb")}, 1, []string{"--kernel-deb", "k.deb"}},
		{"offline empty cache", []string{"build", "--board", "rpi4", "--src", "..", "--cache-dir", empty, "--offline", "--apt-mirror", "http://192.0.2.1/debian"}, 1, []string{"offline", "without --offline"}},
		{"http-boot without a key", []string{"build", "--board", "rpi4", "--http-boot"}, 2, []string{"--sign-key", "openssl genrsa -out boot-key.pem 2048", "ramboot eeprom --pubkey boot-key.pem"}},
		{"sign-key without http-boot", []string{"build", "--board", "rpi4", "--sign-key", "../eeprom/testdata/test-key.pem"}, 2, []string{"--sign-key", "only --http-boot makes"}},
		{"missing sign key", []string{"build", "--board", "rpi4", "--http-boot", "--sign-key", filepath.Join(empty, "k.pem")}, 1, []string{"--sign-key", "k.pem", "no such file"}},
		{"sign key not a key", []string{"build", "--board", "rpi4", "--http-boot", "--sign-key", "cli.go"}, 1, []string{"--sign-key cli.go"}},
		{"http-boot on rpi3", []string{"build", "--board", "rpi3", "--src", "..", "--cache-dir", empty, "--http-boot", "--sign-key", "../eeprom/testdata/test-key.pem"}, 1, []string{"board rpi3 cannot boot over HTTP", "cm4, rpi4, rpi5"}},
		{"http-boot on a PC tree", []string{"build", "--board", "pc,virt", "--src", "..", "--cache-dir", empty, "--http-boot", "--sign-key", "../eeprom/testdata/test-key.pem"}, 1, []string{"none of pc, virt can boot over HTTP", "cm4, rpi4, rpi5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := tc.args
			if len(args) > 0 && args[0] == "build" {
				args = append(args, "--out", out, "--quiet")
			}
			code, _, stderr := runCLI(t, args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "manifest.json")); err == nil {
				t.Errorf("a failed build wrote a manifest")
			}
		})
	}
}

func TestCLIHelpAndBoards(t *testing.T) {
	code, out, _ := runCLI(t, "help", "build")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--kernel-deb") || !strings.Contains(out, "--offline") ||
		!strings.Contains(out, "--http-boot") || !strings.Contains(out, "--sign-key") || !strings.Contains(out, "ramboot eeprom --pubkey") {
		t.Fatalf("help build: exit %d\n%s", code, out)
	}
	code, _, stderr := runCLI(t, "build", "--help")
	if code != 0 || !strings.Contains(stderr, "Examples:") {
		t.Fatalf("build --help: exit %d\n%s", code, stderr)
	}
	code, out, _ = runCLI(t, "boards")
	if code != 0 || !strings.Contains(out, "rpi4") || !strings.Contains(out, "Raspberry Pi 4") || !strings.Contains(out, "virt") {
		t.Fatalf("boards: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "version")
	if code != 0 || out != "ramboot v0.0.0-test\n" {
		t.Fatalf("version: exit %d %q", code, out)
	}
}
