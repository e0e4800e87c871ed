// Command ramboot builds and serves in-RAM netboot images for Raspberry Pis
// and PCs. Run `ramboot help` for the commands; the commands themselves are
// the library github.com/ramboot/ramboot/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ramboot/ramboot/cli"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Context{Args: os.Args[1:], Stdout: os.Stdout, Stderr: os.Stderr, Version: version}.Execute(ctx)
	stop()
	os.Exit(code)
}
