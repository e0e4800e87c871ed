package eeprom

import (
	"slices"
	"strings"
	"testing"
)

func TestMergeConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		old  string
		set  []Setting
		want string
	}{
		{
			"replace in place, append new after the last key",
			"[all]\nBOOT_UART=0\n# boot from SD\nBOOT_ORDER=0x1\nWAKE_ON_GPIO=1\n",
			[]Setting{{"BOOT_ORDER", "0xf21"}, {"TFTP_IP", "192.0.2.1"}},
			"[all]\nBOOT_UART=0\n# boot from SD\nBOOT_ORDER=0xf21\nWAKE_ON_GPIO=1\nTFTP_IP=192.0.2.1\n",
		},
		{
			"filter sections are kept and not edited",
			"[all]\nBOOT_ORDER=0x1\n\n[none]\nFREEZE_VERSION=0\n[gpio7=0]\nBOOT_ORDER=0x4\n",
			[]Setting{{"BOOT_ORDER", "0xf21"}, {"TFTP_PREFIX", "2"}},
			"[all]\nBOOT_ORDER=0xf21\nTFTP_PREFIX=2\n\n[none]\nFREEZE_VERSION=0\n[gpio7=0]\nBOOT_ORDER=0x4\n",
		},
		{
			"keys before any filter count as global; a later [all] part too",
			"BOOT_UART=1\n[pi4]\nBOOT_ORDER=0x1\n[all]\nBOOT_ORDER=0x41\n",
			[]Setting{{"BOOT_ORDER", "0xf21"}},
			"BOOT_UART=1\n[pi4]\nBOOT_ORDER=0x1\n[all]\nBOOT_ORDER=0xf21\n",
		},
		{
			"a commented-out key is not a key",
			"[all]\n#BOOT_ORDER=0xf41\nBOOT_UART=0\n",
			[]Setting{{"BOOT_ORDER", "0xf21"}},
			"[all]\n#BOOT_ORDER=0xf41\nBOOT_UART=0\nBOOT_ORDER=0xf21\n",
		},
		{
			"spaces around = and a value with = in it",
			"[all]\nNETCONSOLE = 1@1.2.3.4/,2@/\n",
			[]Setting{{"NETCONSOLE", "6665@169.254.1.1/,6666@/"}},
			"[all]\nNETCONSOLE=6665@169.254.1.1/,6666@/\n",
		},
		{
			"empty config",
			"",
			[]Setting{{"BOOT_ORDER", "0xf21"}},
			"BOOT_ORDER=0xf21\n",
		},
		{
			"only an [all] line",
			"[all]\n",
			[]Setting{{"BOOT_ORDER", "0xf21"}},
			"[all]\nBOOT_ORDER=0xf21\n",
		},
		{
			"only filtered keys: new keys go to the top",
			"# site config\n[pi4]\nBOOT_UART=1\n",
			[]Setting{{"BOOT_ORDER", "0xf21"}},
			"# site config\nBOOT_ORDER=0xf21\n[pi4]\nBOOT_UART=1\n",
		},
		{
			"no trailing newline is kept",
			"[all]\nBOOT_UART=0",
			[]Setting{{"BOOT_ORDER", "0xf21"}},
			"[all]\nBOOT_UART=0\nBOOT_ORDER=0xf21",
		},
		{
			"the last of a key given twice wins; nothing to do keeps the text",
			"[all]\nBOOT_ORDER=0xf21\n",
			[]Setting{{"BOOT_ORDER", "0x1"}, {"BOOT_ORDER", "0xf21"}},
			"[all]\nBOOT_ORDER=0xf21\n",
		},
		{
			"duplicate lines are all set",
			"[all]\nBOOT_ORDER=0x1\nBOOT_ORDER=0x4\n",
			[]Setting{{"BOOT_ORDER", "0xf21"}},
			"[all]\nBOOT_ORDER=0xf21\nBOOT_ORDER=0xf21\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MergeConfig(tc.old, tc.set)
			if got != tc.want {
				t.Errorf("MergeConfig:\n%s\nwant:\n%s", got, tc.want)
			}
			for _, s := range tc.set {
				if v, ok := Lookup(got, s.Key); !ok || v != want(tc.set, s.Key) {
					t.Errorf("Lookup(%s) = %q, %v", s.Key, v, ok)
				}
			}
		})
	}
}

func TestMergeConfigNothing(t *testing.T) {
	for _, old := range []string{"", "[all]\nBOOT_UART=0\n", "A=1"} {
		if got := MergeConfig(old, nil); got != old {
			t.Errorf("MergeConfig(%q, nil) = %q", old, got)
		}
	}
}

func want(set []Setting, key string) string {
	v := ""
	for _, s := range set {
		if s.Key == key {
			v = s.Value
		}
	}
	return v
}

func TestLookup(t *testing.T) {
	cfg := "[all]\nBOOT_ORDER=0x1\nTFTP_IP=\n[gpio7=0]\nBOOT_ORDER=0x4\n[all]\nBOOT_UART = 1\n"
	for _, tc := range []struct {
		key, val string
		ok       bool
	}{
		{"BOOT_ORDER", "0x1", true},
		{"TFTP_IP", "", true},
		{"BOOT_UART", "1", true},
		{"TFTP_PREFIX", "", false},
	} {
		if v, ok := Lookup(cfg, tc.key); v != tc.val || ok != tc.ok {
			t.Errorf("Lookup(%s) = %q, %v; want %q, %v", tc.key, v, ok, tc.val, tc.ok)
		}
	}
}

func TestValidateSetting(t *testing.T) {
	for _, tc := range []struct {
		kv   string
		want string // "" = valid
	}{
		{"BOOT_ORDER=0xf21", ""},
		{"BOOT_ORDER=0XF21", ""},
		{"BOOT_ORDER=0xf41", ""},
		{"BOOT_ORDER=0x2", ""},
		{"BOOT_ORDER=0xe2", ""},
		{"BOOT_ORDER=0xf7654321", ""},
		{"BOOT_ORDER=f21", "want hex like 0xf21"},
		{"BOOT_ORDER=3873", "want hex like 0xf21"},
		{"BOOT_ORDER=0x", "want hex like 0xf21"},
		{"BOOT_ORDER=0xg21", "at most 8 hex digits"},
		{"BOOT_ORDER=0x1234567f1", "at most 8 hex digits"},
		{"BOOT_ORDER=0x0", "no boot mode"},
		{"BOOT_ORDER=0xf01", "0x0 (SD CARD DETECT) is deprecated"},
		{"BOOT_ORDER=0xf81", "0x8 is not a boot mode"},
		{"BOOT_ORDER=0x1f2", "mode 0x1 comes after 0xf (restart) and is never tried"},
		{"BOOT_ORDER=0x2e1", "after 0xe (stop)"},
		{"TFTP_IP=192.0.2.10", ""},
		{"TFTP_IP=", ""},
		{"TFTP_IP=192.0.2", "want a dotted IPv4 address"},
		{"TFTP_IP=2001:db8::1", "want a dotted IPv4 address"},
		{"TFTP_IP=::ffff:192.0.2.1", "want a dotted IPv4 address"},
		{"CLIENT_IP=192.0.2.300", "want a dotted IPv4 address"},
		{"GATEWAY=gw", "GATEWAY=gw: want a dotted IPv4 address"},
		{"SUBNET=255.255.255.0", ""},
		{"SUBNET=255.0.255.0", "not a netmask"},
		{"TFTP_PREFIX=0", ""},
		{"TFTP_PREFIX=2", ""},
		{"TFTP_PREFIX=3", "want 0 (serial number directory), 1 (TFTP_PREFIX_STR) or 2 (MAC address directory)"},
		{"TFTP_PREFIX=", "want 0"},
		{"TFTP_PREFIX_STR=" + strings.Repeat("x", 33), "at most 32"},
		{"NETCONSOLE=6665@169.254.1.1/,6666@/", ""},
		{"boot_order=0xf21", "upper case, like BOOT_ORDER"},
		{"BOOT ORDER=1", "upper case"},
		{"=1", "upper case"},
		{"BOOT_ORDER", "is not KEY=VALUE"},
	} {
		_, err := ParseSetting(tc.kv)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.kv, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.kv, err, tc.want)
		}
	}
	if err := ValidateSetting(Setting{"PXE_OPTION43", "a\nb"}); err == nil {
		t.Errorf("a value with a line break passed")
	}
}

func TestBootOrder(t *testing.T) {
	modes, err := BootOrderModes("0xf21")
	if err != nil || !slices.Equal(modes, []uint32{1, 2, 0xf}) {
		t.Errorf("BootOrderModes(0xf21) = %x, %v", modes, err)
	}
	if got := DescribeBootOrder("0xf21"); got != "SD card, then network, then restart" {
		t.Errorf("DescribeBootOrder(0xf21) = %q", got)
	}
	if got := DescribeBootOrder("0xf46"); got != "NVMe, then USB mass storage, then restart" {
		t.Errorf("DescribeBootOrder(0xf46) = %q", got)
	}
}
