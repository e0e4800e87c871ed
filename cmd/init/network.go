//go:build linux

package main

import (
	"context"
	"errors"
)

// network brings up the wired interfaces and runs DHCP; it returns the
// value of option 224 (empty if none) and fills env with the lease's facts
// for iPXE scripts.
func (in *Init) network(ctx context.Context, env map[string]string) (string, error) {
	return "", errors.New("network bring-up is not built in yet")
}
