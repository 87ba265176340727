// Command kubectl-hookpost is the Hookpost kubectl plugin: on PATH it runs as `kubectl hookpost`. It sends test
// events to a subscription, replays deliveries, shows the exact request Hookpost sends, publishes events into a
// source, verifies signatures for receiver developers and prints a subscription's signing secret.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}).ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

// exitError ends the plugin with a code after the command has said why on its own, as verify does for an
// invalid signature.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit code %d", e.code) }

// exitCode prints err, unless the command already reported it, and returns the process exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	return 1
}
