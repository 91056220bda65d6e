// Command lookout turns live and recorded video into captions on Kafka.
//
// Exit codes: 0 success; 1 runtime failure (a source, the model or a sink
// failed); 2 bad usage or configuration (unknown flag, invalid config field,
// missing file named on the command line).
package main

import (
	"errors"
	"fmt"
	"lookout/internal/service"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageError marks errors that exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitError carries an exit status other than 1 or 2 (130: interrupted).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// usagef returns an error that makes lookout exit with status 2.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "lookout",
		Short:         "Caption live and recorded video into Kafka",
		SilenceUsage:  true,
		SilenceErrors: true,
		// An unknown command is bad usage (exit 2); without arguments the
		// root prints its help.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q: see lookout --help", args[0])
			}
			return cmd.Help()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newRunCmd(),
		newCaptionCmd(),
		newTailCmd(),
		newRulesCmd(),
		newSourcesCmd(),
		newModelCmd(),
		newScenesCmd(),
		newVersionCmd(),
	)
	return root
}

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "lookout:", err)
	var ee exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	var ue usageError
	var ce service.ConfigError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		os.Exit(2)
	}
	os.Exit(1)
}

// noArgs is cobra.NoArgs as a usage error (exit 2).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q: see %s --help", cmd.Name(), args[0], cmd.CommandPath())
	}
	return nil
}

// groupCmd is a command that only groups subs: alone it prints its help,
// and an argument that is no subcommand is bad usage (exit 2).
func groupCmd(use, short, long string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(subs...)
	return cmd
}

// minArgs requires n arguments; what says what to give.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s: %s (see %s --help)", cmd.Name(), what, cmd.CommandPath())
		}
		return nil
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print lookout's version",
		Args:  noArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "lookout", version)
		},
	}
}
