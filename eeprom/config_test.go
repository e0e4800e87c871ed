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

// TestValidateHTTP: the rules for HTTP_HOST, HTTP_PORT, HTTP_PATH and
// HTTP_CACERT_HASH, through ParseSetting as `--set` checks them.
func TestValidateHTTP(t *testing.T) {
	for _, tc := range []struct {
		kv   string
		want string // "" = valid
	}{
		{"HTTP_HOST=192.0.2.1", ""},
		{"HTTP_HOST=10.0.0.254", ""},
		{"HTTP_HOST=boot.lan", ""},
		{"HTTP_HOST=pi-boot.rack-1.example.com", ""},
		{"HTTP_HOST=server1", ""},
		{"HTTP_HOST=", ""}, // unsets: Raspberry Pi's own server
		{"HTTP_HOST=Boot.LAN", "has upper-case letters: the bootloader silently ignores such a name and fetches from Raspberry Pi's own server instead; write it in lower case: HTTP_HOST=boot.lan"},
		{"HTTP_HOST=BOOT", "HTTP_HOST=boot"},
		{"HTTP_HOST=http://192.0.2.1", "without http://"},
		{"HTTP_HOST=https://boot.lan/rpi4", "HTTP_HOST=boot.lan"},
		{"HTTP_HOST=boot.lan/rpi4", "the path goes in HTTP_PATH"},
		{"HTTP_HOST=192.0.2.1:8080", "HTTP_HOST=192.0.2.1 HTTP_PORT=8080"},
		{"HTTP_HOST=2001:db8::1", "no IPv6"},
		{"HTTP_HOST=::ffff:192.0.2.1", "no IPv6"},
		{"HTTP_HOST=192.0.2", "is not an IPv4 address"},
		{"HTTP_HOST=192.0.2.256", "is not an IPv4 address"},
		{"HTTP_HOST=192.168.001.010", "without leading zeros"},
		{"HTTP_HOST=boot_server", `"_" is not allowed`},
		{"HTTP_HOST=böot.lan", `"ö" is not allowed`},
		{"HTTP_HOST=boot lan", `" " is not allowed`},
		{"HTTP_HOST=boot..lan", "each dot-separated part must be 1 to 63 characters"},
		{"HTTP_HOST=.boot.lan", "is not a host name"},
		{"HTTP_HOST=boot.lan.", "is not a host name"},
		{"HTTP_HOST=-boot.lan", "may not begin or end with '-'"},
		{"HTTP_HOST=" + strings.Repeat("a", 64) + ".lan", "1 to 63 characters"},
		{"HTTP_HOST=" + strings.Repeat("abcdefg.", 32) + "lan", "at most 253"},
		{"HTTP_PORT=8080", ""},
		{"HTTP_PORT=1", ""},
		{"HTTP_PORT=65535", ""},
		{"HTTP_PORT=0", "want a port number from 1 to 65535"},
		{"HTTP_PORT=65536", "from 1 to 65535"},
		{"HTTP_PORT=", "from 1 to 65535"},
		{"HTTP_PORT=-1", "from 1 to 65535"},
		{"HTTP_PORT=+80", "from 1 to 65535"},
		{"HTTP_PORT=http", "from 1 to 65535"},
		{"HTTP_PORT=0x50", "from 1 to 65535"},
		{"HTTP_PORT=080", "without leading zeros: HTTP_PORT=80"},
		{"HTTP_PATH=rpi4", ""},
		{"HTTP_PATH=net_install", ""},
		{"HTTP_PATH=images/rack-1/Pi4.v2~x", ""},
		{"HTTP_PATH=", "HTTP_PATH is empty"},
		{"HTTP_PATH=/rpi4", "leave out the leading and trailing '/'"},
		{"HTTP_PATH=rpi4/", "HTTP_PATH=rpi4"},
		{"HTTP_PATH=/", "leave out the leading and trailing '/'"},
		{"HTTP_PATH=a//b", "empty segment (//)"},
		{"HTTP_PATH=a/./b", `"." segment`},
		{"HTTP_PATH=..", `".." segment`},
		{"HTTP_PATH=my images", "space or tab"},
		{"HTTP_PATH=a\tb", "space or tab"},
		{"HTTP_PATH=rpi4?x=1", `"?" is not allowed`},
		{"HTTP_PATH=rpi%34", `"%" is not allowed`},
		{"HTTP_CACERT_HASH=", ""},
		{"HTTP_CACERT_HASH=" + strings.Repeat("0a", 32), ""},
		{"HTTP_CACERT_HASH=" + strings.Repeat("0A", 32), ""},
		{"HTTP_CACERT_HASH=" + strings.Repeat("0a", 31), "64 hex digits"},
		{"HTTP_CACERT_HASH=" + strings.Repeat("zz", 32), "64 hex digits"},
	} {
		_, err := ParseSetting(tc.kv)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.kv, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.kv, err, tc.want)
		}
	}
}

func TestHTTPBootURL(t *testing.T) {
	for _, tc := range []struct {
		config, want string
	}{
		{"[all]\nBOOT_ORDER=0xf27\n", ""},
		{"[all]\nHTTP_HOST=\n", ""},
		{"[all]\nHTTP_HOST=192.0.2.1\nHTTP_PORT=8080\nHTTP_PATH=rpi4\n", "http://192.0.2.1:8080/rpi4/boot.img"},
		{"[all]\nHTTP_HOST=boot.lan\n", "http://boot.lan:80/net_install/boot.img"},
		{"[all]\nHTTP_HOST=boot.lan\nHTTP_CACERT_HASH=" + strings.Repeat("ab", 32) + "\n", "https://boot.lan:443/net_install/boot.img"},
		{"[all]\nHTTP_HOST=boot.lan\n[gpio8=0]\nHTTP_PATH=other\n", "http://boot.lan:80/net_install/boot.img"},
	} {
		got, ok := HTTPBootURL(tc.config)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("HTTPBootURL(%q) = %q, %v; want %q", tc.config, got, ok, tc.want)
		}
	}
}
