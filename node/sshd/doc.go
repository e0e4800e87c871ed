// Package sshd is the SSH server behind ramboot's provisioning shell.
//
// It accepts only public-key authentication against the keys listed in
// an authorized_keys file (laid into the initramfs by an overlay); there
// is no password or keyboard-interactive login and no port forwarding.
// Every user name maps to root. Sessions run the configured shell,
// interactively on a PTY or as "shell -c command" for exec requests.
//
// The server is written to run inside PID 1, where a global reaper calls
// Wait4(-1) and may collect a child before the server does: see Waiter.
package sshd
