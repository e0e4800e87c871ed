package report

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		r       Report
		mac     string
		wantErr string
	}{
		{Report{MAC: "52-54-00-12-34-56", Stage: SwitchRoot}, "52:54:00:12:34:56", ""},
		{Report{MAC: "52:54:00:12:34:56", Stage: Download, Bytes: 5, Total: 10}, "52:54:00:12:34:56", ""},
		{Report{MAC: "nope", Stage: Shell}, "", "mac"},
		{Report{MAC: "00:00:00:00:fe:80:00:00", Stage: Shell}, "", "mac"},
		{Report{MAC: "52:54:00:12:34:56", Stage: "pwned"}, "", "stage"},
		{Report{MAC: "52:54:00:12:34:56", Stage: ""}, "", "stage"},
		{Report{MAC: "52:54:00:12:34:56", Stage: Flash, Bytes: -1}, "", "negative"},
		{Report{MAC: "52:54:00:12:34:56", Stage: NetworkUp, BootImg: strings.Repeat("ab", 32)}, "52:54:00:12:34:56", ""},
		{Report{MAC: "52:54:00:12:34:56", Stage: NetworkUp, BootImg: strings.Repeat("AB", 32)}, "", "boot_img"},
		{Report{MAC: "52:54:00:12:34:56", Stage: NetworkUp, BootImg: strings.Repeat("ab", 31)}, "", "boot_img"},
		{Report{MAC: "52:54:00:12:34:56", Stage: NetworkUp, BootImg: strings.Repeat("ab", 31) + "g0"}, "", "boot_img"},
	} {
		mac, err := tc.r.Check()
		if tc.wantErr == "" && (err != nil || mac != tc.mac) {
			t.Errorf("%+v: %q, %v; want %q", tc.r, mac, err, tc.mac)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: %v; want an error about %s", tc.r, err, tc.wantErr)
		}
	}
}

func TestStagesKnown(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Stages {
		if !Known(s) || seen[s] || s == "" {
			t.Errorf("stage %q: known %v, repeated %v", s, Known(s), seen[s])
		}
		seen[s] = true
	}
}

func TestClip(t *testing.T) {
	if got := Clip(strings.Repeat("é", 100), 11); got != "éééé..." {
		t.Errorf("Clip = %q", got)
	}
	if got := Clip("short", 11); got != "short" {
		t.Errorf("Clip = %q", got)
	}
}
