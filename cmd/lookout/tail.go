package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until the owner of this command lands it.
func newTailCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tail",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("tail: not built yet") },
	}
}
