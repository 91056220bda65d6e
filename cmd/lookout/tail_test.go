package main

import (
	"bytes"
	"errors"
	"testing"
)

func TestTailFlagsAreValidated(t *testing.T) {
	cases := map[string][]string{
		"bad broker":   {"tail", "--brokers", "nohost"},
		"empty topic":  {"tail", "--topic", ""},
		"neg count":    {"tail", "--count", "-1"},
		"neg timeout":  {"tail", "--timeout", "-1s"},
		"unknown flag": {"tail", "--nope"},
		"bad kind":     {"tail", "--kind", "alertz"},
	}
	for name, args := range cases {
		root := newRootCmd()
		root.SetArgs(args)
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		err := root.Execute()
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%s: got %v, want a usage error (exit 2)", name, err)
		}
	}
}
