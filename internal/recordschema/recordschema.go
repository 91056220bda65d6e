// Package recordschema checks JSON records against docs/record.schema.json, the
// published contract of lookout's records. Tests of the sinks and of the binary
// use it; the service itself does not.
package recordschema

import (
	"bytes"
	"fmt"
	"os"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema is a compiled record schema.
type Schema struct{ s *jsonschema.Schema }

// Load compiles the schema file at path, with format assertions (date-time) on.
func Load(path string) (*Schema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the record schema: %w", err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("record.schema.json", doc); err != nil {
		return nil, err
	}
	s, err := c.Compile("record.schema.json")
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", path, err)
	}
	return &Schema{s}, nil
}

// Validate checks one JSON record; it fails on JSON that does not parse too.
func (s *Schema) Validate(raw []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	return s.s.Validate(v)
}
