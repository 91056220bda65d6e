package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until the owner of this command lands it.
func newScenesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "scenes",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("scenes: not built yet") },
	}
}
