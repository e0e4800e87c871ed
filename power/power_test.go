package power

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/site/inventory"
)

// TestCommandDriver: the command driver runs PROGRAM ACTION NAME MAC and
// takes the state from its first word; a failing program's answer is in
// the error.
func TestCommandDriver(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	script := filepath.Join(dir, "pdu")
	os.WriteFile(script, []byte(`#!/bin/sh
echo "$@" >> `+filepath.Join(dir, "calls")+`
case $1 in
on) echo on > `+state+` ;;
off) echo off > `+state+` ;;
cycle) echo on > `+state+` ;;
status) ;;
*) echo "pdu: no such outlet" >&2; exit 3 ;;
esac
cat `+state+` 2>/dev/null || echo off
`), 0o755)
	d, err := New(&inventory.Power{Driver: "command", Command: script}, "web-1", "52:54:00:12:34:61")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a    Action
		want string
	}{{Status, "off"}, {On, "on"}, {Off, "off"}, {Cycle, "on"}, {Status, "on"}} {
		if got, err := d.Do(context.Background(), tc.a); err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.a, got, err, tc.want)
		}
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	if !strings.HasPrefix(string(calls), "status web-1 52:54:00:12:34:61\non web-1 52:54:00:12:34:61\n") {
		t.Errorf("the program was called with:\n%s", calls)
	}
	if _, err := d.Do(context.Background(), "reset"); err == nil || !strings.Contains(err.Error(), "no such outlet") {
		t.Errorf("a failing program: %v; want its answer in the error", err)
	}
}

// TestSecretsNeverShown: a driver's name and its errors name the secret's
// file, never its content.
func TestSecretsNeverShown(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "bmc.pass")
	os.WriteFile(pass, []byte("s3cret-Pa55\n"), 0o600)
	for _, p := range []*inventory.Power{
		{Driver: "ipmi", Address: "127.0.0.1:1", Username: "admin", PasswordFile: pass},
		{Driver: "poe", Address: "127.0.0.1:1", Port: "1.3", CommunityFile: pass},
	} {
		d, err := New(p, "n", "52:54:00:12:34:61")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8e9)
		_, err = d.Do(ctx, Status)
		cancel()
		if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(d.String(), "s3cret") {
			t.Errorf("%s: %v; want an error without the secret", d, err)
		}
	}
	d, _ := New(&inventory.Power{Driver: "poe", Address: "127.0.0.1", Port: "3", CommunityFile: filepath.Join(dir, "missing")}, "n", "")
	if _, err := d.Do(context.Background(), On); err == nil || !strings.Contains(err.Error(), "community_file") {
		t.Errorf("a missing community file: %v", err)
	}
	if d.String() != "poe 127.0.0.1:161 port 1.3" {
		t.Errorf("driver %q", d)
	}
}

func TestParseAction(t *testing.T) {
	for _, s := range []string{"on", "off", "cycle", "status"} {
		if a, err := ParseAction(s); err != nil || string(a) != s {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseAction("reboot"); err == nil {
		t.Error("reboot accepted")
	}
}
