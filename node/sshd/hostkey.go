//go:build linux

package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// HostKeyFile is the name of the host key inside HostKeyDir.
const HostKeyFile = "ssh_host_ed25519_key"

// hostKey loads the host key from HostKeyDir, or generates and stores
// one. If it cannot be stored the generated key is used anyway (and the
// failure logged): the server works, but its key changes on restart.
func (s *Server) hostKey() (ssh.Signer, error) {
	dir := s.HostKeyDir
	if dir == "" {
		dir = DefaultHostKeyDir
	}
	path := filepath.Join(dir, HostKeyFile)
	data, err := os.ReadFile(path)
	if err == nil {
		signer, perr := ssh.ParsePrivateKey(data)
		if perr == nil {
			return signer, nil
		}
		s.logf("ssh: host key %s: %v; generating a new one", path, perr)
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.logf("ssh: host key %s: %v; generating a new one", path, err)
	}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ssh: generate host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("ssh: host key: %w", err)
	}
	if err := writeHostKey(dir, path, priv, signer.PublicKey()); err != nil {
		s.logf("ssh: cannot store host key: %v; it will change on restart", err)
	} else {
		s.logf("ssh: generated host key %s %s", path, ssh.FingerprintSHA256(signer.PublicKey()))
	}
	return signer, nil
}

func writeHostKey(dir, path string, priv ed25519.PrivateKey, pub ssh.PublicKey) error {
	block, err := ssh.MarshalPrivateKey(priv, "ramboot host key")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".hostkey-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := pem.Encode(tmp, block); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The public half is a convenience (e.g. to print or fetch it); a
	// failure here does not matter.
	_ = os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(pub), 0o644)
	return nil
}
