package eeprom

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/internal/testenv"
)

// testKey is testdata/test-key.pem, an RSA-2048 key made for these tests
// (openssl genrsa): its public half's pubkey.bin is in upstream.sha256.
func testKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	data, err := os.ReadFile("testdata/test-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return key, data
}

// keyForms are the PEM forms of key that `rpi-eeprom-config -p` takes.
func keyForms(t *testing.T, key *rsa.PrivateKey, pkcs8 []byte) map[string][]byte {
	t.Helper()
	pkix, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"pkcs8-private": pkcs8,
		"pkcs1-private": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"pkix-public":   pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"pkcs1-public":  pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}),
	}
}

func TestPublicKeyBin(t *testing.T) {
	key, pkcs8 := testKey(t)
	want, err := PublicKeyBin(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 264 {
		t.Fatalf("%d bytes, want 264", len(want))
	}
	// n little-endian: its first byte is n's lowest.
	if want[0] != byte(key.N.Uint64()) || want[255] != key.N.Bytes()[0] || want[256] != byte(key.E) || want[256+3] != 0 {
		t.Errorf("not n LE ‖ e LE: % x ... % x", want[:4], want[252:])
	}
	for name, data := range keyForms(t, key, pkcs8) {
		pub, err := ParsePublicKey(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, _ := PublicKeyBin(pub); !bytes.Equal(got, want) {
			t.Errorf("%s: another pubkey.bin", name)
		}
	}
	back, ok := ParsePublicKeyBin(want)
	if !ok || !back.Equal(&key.PublicKey) {
		t.Errorf("ParsePublicKeyBin(PublicKeyBin(k)) = %v, %v", back, ok)
	}
	if _, ok := ParsePublicKeyBin(make([]byte, 512)); ok {
		t.Errorf("512 zero bytes (the official images' pubkey.bin) read as a key")
	}

	for _, l := range layouts() {
		if _, ok := l.File("pubkey.bin"); !ok {
			continue
		}
		im, _ := Parse(l.image)
		if err := im.SetPublicKey(&key.PublicKey); err != nil {
			t.Fatalf("%s: %v", l.name, err)
		}
		if got, ok := im.PublicKey(); !ok || !got.Equal(&key.PublicKey) {
			t.Errorf("%s: PublicKey() after SetPublicKey = %v, %v", l.name, got, ok)
		}
		if got, _ := im.File(PubkeyFile); !bytes.Equal(got, want) {
			t.Errorf("%s: pubkey.bin is not PublicKeyBin", l.name)
		}
	}
}

// File is Image.File on a layout's image.
func (l layout) File(name string) ([]byte, bool) {
	im, err := Parse(l.image)
	if err != nil {
		return nil, false
	}
	return im.File(name)
}

func TestParsePublicKeyErrors(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"not pem", []byte("ssh-rsa AAAA"), "no PEM block"},
		{"1024 bits", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}), "a 1024-bit RSA key, but the bootloader takes RSA-2048 only"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}}), "openssl rsa -in key.pem -out plain.pem"},
		{"pkcs8 encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), "the key is encrypted"},
		{"ec public", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}), "not an RSA key"},
		{"ec private", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecPriv}), "not an RSA key"},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), `a PEM "CERTIFICATE" block`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublicKey(tc.data)
			if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParsePublicKey: %v, want ErrKey with %q", err, tc.want)
			}
		})
	}
}

// cryptodomePython returns a Python that can import Cryptodome, which
// `rpi-eeprom-config -p` needs: python3 on PATH may be another Python
// (pyenv's, say) than the one Debian's python3-pycryptodome installs for.
func cryptodomePython(t *testing.T) string {
	t.Helper()
	tried := []string{}
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		p, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "from Cryptodome.PublicKey import RSA").Run() == nil {
			return p
		}
		tried = append(tried, p)
	}
	testenv.Skipf(t, "no Python here can import Cryptodome (tried %s), which rpi-eeprom-config -p needs: apt-get install python3-pycryptodome (e2e/deps.sh does; make test runs it)", strings.Join(tried, ", "))
	return ""
}

// TestPubkeyPeer embeds the test key with SetConfig and SetPublicKey and
// with `rpi-eeprom-config --config C --pubkey K`, and wants the same bytes.
func TestPubkeyPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs upstream's Python script: not in -short (make unit)")
	}
	py := cryptodomePython(t)
	needTool(t, "openssl")
	vendored, head := configPeers(t)
	vendored.python = py
	if head.script != "" {
		head.python = py
	}
	g := loadGolden(t)
	dir := t.TempDir()
	key, pkcs8 := testKey(t)
	forms := keyForms(t, key, pkcs8)
	pubPath := writeFile(t, dir, "pub.pem", forms["pkix-public"])

	// pubkey.bin's first 256 bytes are openssl's modulus, reversed.
	out, err := exec.Command("openssl", "rsa", "-pubin", "-in", pubPath, "-noout", "-modulus").Output()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := hex.DecodeString(strings.TrimSpace(strings.TrimPrefix(string(out), "Modulus=")))
	if err != nil {
		t.Fatal(err)
	}
	bin, _ := PublicKeyBin(&key.PublicKey)
	reverse(mod)
	if !bytes.Equal(bin[:256], mod) {
		t.Errorf("pubkey.bin's n is not openssl's modulus little-endian")
	}

	conf := baseConfig + "BOOT_ORDER=0xf21\n"
	for _, l := range layouts() {
		if _, ok := l.File(PubkeyFile); !ok {
			continue
		}
		t.Run(l.name, func(t *testing.T) {
			im, _ := Parse(l.image)
			if err := im.SetConfig(conf); err != nil {
				t.Fatal(err)
			}
			if err := im.SetPublicKey(&key.PublicKey); err != nil {
				t.Fatal(err)
			}
			for form, data := range forms {
				keyPath := writeFile(t, dir, l.name+"-"+form+".pem", data)
				var up []byte
				if head.script != "" {
					up = head.edit(t, dir, "pubkey-"+l.name+"-"+form, l.image, conf, "--pubkey", keyPath)
				}
				g.check(t, "pubkey/"+l.name, im.Bytes(), up)
				if l.name != "pi5-ab" {
					if old := vendored.edit(t, dir, "pubkey-vendored-"+l.name+"-"+form, l.image, conf, "--pubkey", keyPath); !bytes.Equal(old, im.Bytes()) {
						t.Errorf("%s key: differs from the vendored rpi-eeprom-config at 0x%x", form, firstDiff(old, im.Bytes()))
					}
				}
			}
			if l.name == "pi5-ab" && !bytes.Equal(im.Bytes()[PartitionEnd:], l.image[PartitionEnd:]) {
				t.Errorf("partition B changed")
			}
		})
	}

	// Both refuse keys of other sizes.
	peer := vendored
	if head.script != "" {
		peer = head
	}
	in := writeFile(t, dir, "refuse-in.bin", layouts()[0].image)
	cfg := writeFile(t, dir, "refuse.txt", []byte(conf))
	for _, bits := range []string{"1024", "4096"} {
		p := filepath.Join(dir, "key-"+bits+".pem")
		if out, err := exec.Command("openssl", "genrsa", "-out", p, bits).CombinedOutput(); err != nil {
			t.Fatalf("openssl genrsa %s: %v\n%s", bits, err, out)
		}
		if _, err := peer.run("--config", cfg, "--pubkey", p, "--out", filepath.Join(dir, "refused.bin"), in); err == nil || !strings.Contains(err.Error(), "RSA key size must be 2048") {
			t.Errorf("upstream with a %s-bit key: %v", bits, err)
		}
		data, _ := os.ReadFile(p)
		if _, err := ParsePublicKey(data); !errors.Is(err, ErrKey) {
			t.Errorf("ParsePublicKey(%s bits) = %v, want ErrKey", bits, err)
		}
	}
}

// TestWriteRecoveryPubkeyPeer: the pieeprom.bin WriteRecovery writes with
// HTTP settings and a PublicKey, as `ramboot eeprom --http-host --pubkey`
// does, is what `rpi-eeprom-config --config C --pubkey K` writes for the
// same config text: the vendored script on the layouts it agrees on, the
// current one (or its recorded sha256) on all.
func TestWriteRecoveryPubkeyPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs upstream's Python script: not in -short (make unit)")
	}
	py := cryptodomePython(t)
	vendored, head := configPeers(t)
	vendored.python = py
	if head.script != "" {
		head.python = py
	}
	g := loadGolden(t)
	dir := t.TempDir()
	key, pkcs8 := testKey(t)
	keyPath := writeFile(t, dir, "key.pem", pkcs8)
	set := []Setting{{"BOOT_ORDER", "0xf27"}, {"HTTP_HOST", "192.0.2.1"}, {"HTTP_PORT", "8080"}, {"HTTP_PATH", "rpi4"}}
	for _, l := range layouts() {
		if _, ok := l.File(PubkeyFile); !ok {
			continue
		}
		t.Run(l.name, func(t *testing.T) {
			card := filepath.Join(dir, l.name)
			res, err := WriteRecovery(card, Recovery{Image: l.image, Recovery: []byte("r"), Settings: set, Time: ts, PublicKey: &key.PublicKey})
			if err != nil {
				t.Fatal(err)
			}
			ours, err := os.ReadFile(filepath.Join(card, ImageName))
			if err != nil {
				t.Fatal(err)
			}
			var up []byte
			if head.script != "" {
				up = head.edit(t, dir, "http-"+l.name, l.image, res.NewConfig, "--pubkey", keyPath)
			}
			g.check(t, "recovery-http/"+l.name, ours, up)
			if l.name != "pi5-ab" {
				if old := vendored.edit(t, dir, "http-vendored-"+l.name, l.image, res.NewConfig, "--pubkey", keyPath); !bytes.Equal(old, ours) {
					t.Errorf("differs from the vendored rpi-eeprom-config at 0x%x", firstDiff(old, ours))
				}
			}
		})
	}
}
