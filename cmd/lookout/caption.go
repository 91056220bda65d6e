package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until the owner of this command lands it.
func newCaptionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "caption",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("caption: not built yet") },
	}
}
