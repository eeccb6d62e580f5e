package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"nimbus/internal/watchdogcmd"
)

func watchdogCmd(g *globals) *cobra.Command {
	c := watchdogcmd.Command("watchdog", g.stdout, g.stderr)
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := run(cmd, args); errors.Is(err, watchdogcmd.ErrNoCommand) {
			return usagef("%v", err)
		} else {
			return err
		}
	}
	return c
}
