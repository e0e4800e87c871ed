package eeprom

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// digestPeers are rpi-eeprom-digest: the vendored copy (01300506) and, with
// RAMBOOT_RPI_EEPROM, the current one.
func digestPeers(t *testing.T) map[string]string {
	t.Helper()
	peers := map[string]string{"vendored": "testdata/rpi-eeprom-digest"}
	if dir := upstreamDir(t); dir != "" {
		peers["current"] = filepath.Join(dir, "rpi-eeprom-digest")
	}
	return peers
}

func runDigest(script string, args ...string) (string, error) {
	cmd := exec.Command("sh", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSignDigestPeer signs with SignDigest and with rpi-eeprom-digest -k,
// wants the same bytes, and has each verify the other's signature and
// refuse a tampered file or signature.
func TestSignDigestPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs upstream's rpi-eeprom-digest and openssl 40 times: not in -short (make unit)")
	}
	needTool(t, "sh", "sha256sum", "awk", "mktemp", "openssl", "xxd")
	key, pkcs8 := testKey(t)
	dir := t.TempDir()
	keyPath := writeFile(t, dir, "key.pem", pkcs8)
	pubPath := writeFile(t, dir, "pub.pem", keyForms(t, key, pkcs8)["pkix-public"])
	big := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{5}).Read(big)
	inputs := map[string][]byte{"empty": {}, "one-byte": []byte("x"), "1MiB": big, "pieeprom": layouts()[0].image}
	for peer, script := range digestPeers(t) {
		for name, data := range inputs {
			t.Run(peer+"/"+name, func(t *testing.T) {
				in := writeFile(t, dir, peer+"-"+name+".bin", data)
				ours, err := SignDigest(data, 1700000000, key)
				if err != nil {
					t.Fatal(err)
				}
				// Upstream signs: the same bytes.
				upPath := filepath.Join(dir, peer+"-"+name+".up.sig")
				if out, err := runDigest(script, "-k", keyPath, "-i", in, "-o", upPath); err != nil {
					t.Fatalf("rpi-eeprom-digest -k: %v\n%s", err, out)
				}
				up, err := os.ReadFile(upPath)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(ours, up) {
					t.Errorf("SignDigest:\n%s\nrpi-eeprom-digest -k wrote:\n%s", ours, up)
				}
				if err := VerifySig(data, up, &key.PublicKey); err != nil {
					t.Errorf("VerifySig(upstream's .sig): %v", err)
				}
				// Upstream verifies ours.
				oursPath := writeFile(t, dir, peer+"-"+name+".ours.sig", ours)
				if out, err := runDigest(script, "-k", pubPath, "-i", in, "-v", oursPath); err != nil || !strings.Contains(out, "Verified OK") {
					t.Errorf("rpi-eeprom-digest -v our .sig: %v\n%s", err, out)
				}
				// A changed file: both refuse.
				bad := append(bytes.Clone(data), 0)
				if len(data) > 0 {
					bad = bytes.Clone(data)
					bad[len(bad)/2] ^= 1
				}
				badPath := writeFile(t, dir, peer+"-"+name+".bad.bin", bad)
				if out, err := runDigest(script, "-k", pubPath, "-i", badPath, "-v", oursPath); err == nil || !strings.Contains(out, "not verified") {
					t.Errorf("rpi-eeprom-digest -v took a changed file: %v\n%s", err, out)
				}
				if err := VerifySig(bad, ours, &key.PublicKey); !errors.Is(err, ErrSig) || !strings.Contains(err.Error(), "belongs to another file") {
					t.Errorf("VerifySig(changed file) = %v", err)
				}
				// A changed signature: both refuse.
				tampered := bytes.Clone(ours)
				i := bytes.Index(tampered, []byte("rsa2048: ")) + len("rsa2048: ") + 100
				if tampered[i] == '0' {
					tampered[i] = '1'
				} else {
					tampered[i] = '0'
				}
				tamperedPath := writeFile(t, dir, peer+"-"+name+".tampered.sig", tampered)
				if out, err := runDigest(script, "-k", pubPath, "-i", in, "-v", tamperedPath); err == nil || !strings.Contains(out, "not verified") {
					t.Errorf("rpi-eeprom-digest -v took a changed signature: %v\n%s", err, out)
				}
				if err := VerifySig(data, tampered, &key.PublicKey); !errors.Is(err, ErrSig) || !strings.Contains(err.Error(), "does not verify") {
					t.Errorf("VerifySig(changed signature) = %v", err)
				}
			})
		}
	}
	// Another key's public half: both refuse.
	other := filepath.Join(dir, "other.pem")
	if out, err := exec.Command("openssl", "genrsa", "-out", other, "2048").CombinedOutput(); err != nil {
		t.Fatalf("openssl genrsa: %v\n%s", err, out)
	}
	otherData, _ := os.ReadFile(other)
	otherPub, err := ParsePublicKey(otherData)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := SignDigest([]byte("x"), 0, key)
	if err := VerifySig([]byte("x"), sig, otherPub); !errors.Is(err, ErrSig) {
		t.Errorf("VerifySig with another key: %v", err)
	}
}

func TestParseSig(t *testing.T) {
	key, _ := testKey(t)
	signed, err := SignDigest([]byte("abc"), 1700000000, key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSig(signed)
	if err != nil || s.SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" || s.TS != 1700000000 || len(s.RSA2048) != 256 || s.TargetSoC != "" {
		t.Errorf("ParseSig(SignDigest) = %+v, %v", s, err)
	}
	sum := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	sigHex := strings.Repeat("ab", 256)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unsigned", sum + "\nts: 0\n", ""},
		{"target-soc", sum + "\nts: 5\ntarget-soc: 2712\nrsa2048: " + sigHex + "\n", ""},
		{"no newline at end", sum + "\nts: 5", ""},
		{"empty", "", "empty"},
		{"uppercase sha", strings.ToUpper(sum) + "\nts: 1\n", "64 lowercase hex"},
		{"short sha", sum[:63] + "\nts: 1\n", "64 lowercase hex"},
		{"no ts", sum + "\n", "no ts: line"},
		{"bad ts", sum + "\nts: soon\n", "not one decimal Unix time"},
		{"two ts", sum + "\nts: 1\nts: 2\n", "not one decimal"},
		{"short rsa", sum + "\nts: 1\nrsa2048: abcd\n", "512 lowercase hex"},
		{"garbage line", sum + "\nts: 1\nhello\n", "not NAME: VALUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSig([]byte(tc.in))
			if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, ErrSig) || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("ParseSig: %v, want %q", err, tc.want)
			}
		})
	}
	if err := VerifySig([]byte("abc"), []byte(sum+"\nts: 0\n"), &key.PublicKey); !errors.Is(err, ErrSig) || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("VerifySig(unsigned) = %v", err)
	}
}

func FuzzParseSig(f *testing.F) {
	f.Add([]byte("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nts: 1700000000\n"))
	f.Add([]byte("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nts: 1\ntarget-soc: 2711\nrsa2048: " + strings.Repeat("0f", 256) + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSig(b)
		if err != nil {
			return
		}
		if len(s.SHA256) != 64 || s.RSA2048 != nil && len(s.RSA2048) != 256 {
			t.Errorf("ParseSig(%q) = %+v", b, s)
		}
	})
}
