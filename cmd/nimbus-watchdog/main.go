// Command nimbus-watchdog is `nimbus watchdog` alone, for function images:
// the watchdog without the platform (a few MiB of memory). As the image's
// entrypoint it takes what `nimbus watchdog` takes; a first argument
// "watchdog" is skipped, so that ["/nimbus", "watchdog", …] entrypoints
// work with either binary copied in as /nimbus.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"nimbus/internal/watchdogcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := watchdogcmd.Command("nimbus-watchdog", os.Stdout, os.Stderr)
	c.SilenceUsage, c.SilenceErrors = true, true // said once, below
	if args := os.Args[1:]; len(args) > 0 && args[0] == "watchdog" {
		c.SetArgs(args[1:])
	}
	if err := c.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "nimbus-watchdog:", err)
		os.Exit(2)
	}
}
