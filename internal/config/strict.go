package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// FieldError is one mistake in a configuration document, placed as exactly
// as the document allows: "site.yaml:6: sources[0]: unknown field ...".
type FieldError struct {
	// File names the document; "" for one without a name (a request body).
	File string
	// Line is 1-based; 0 when the field is not in the document (a default).
	Line int
	// Path is the field, e.g. sources[0].every; "" for the document itself.
	Path string
	// Err says what is wrong and, where it can, what would be right.
	Err error
}

// Error reads "FILE:LINE: PATH: what is wrong", leaving out the parts that
// are not known; without a file name the position reads "line N".
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

// maxReported bounds how many mistakes one error lists.
const maxReported = 10

// joinFieldErrors reports each distinct mistake once, one per line, in
// document order of first appearance: the same message at the same field
// pattern (sources[0].every and sources[3].every share sources[].every) is
// one mistake. Past maxReported the last line says how many were left out.
// It returns nil for none and the *FieldError itself for one.
func joinFieldErrors(errs []*FieldError) error {
	seen := map[string]bool{}
	var out []error
	left := 0
	for _, e := range errs {
		key := indexRE.ReplaceAllString(e.Path, "[]") + "\x00" + e.Err.Error()
		if seen[key] {
			continue
		}
		seen[key] = true
		if len(out) == maxReported {
			left++
			continue
		}
		out = append(out, e)
	}
	switch {
	case len(out) == 0:
		return nil
	case len(out) == 1:
		return out[0]
	}
	if left > 0 {
		out = append(out, &FieldError{File: errs[0].File, Err: fmt.Errorf("%d more mistakes not shown; fix these first", left)})
	}
	return errors.Join(out...)
}

var indexRE = regexp.MustCompile(`\[[0-9]+\]`)

// DecodeStrict decodes the first YAML (or JSON) document in data into out, a
// pointer to a struct whose yaml tags name its fields. Unlike yaml's own
// strict mode it reports, in lookout's words and with the line of each:
// unknown fields (with the known ones, and a suggestion when one is a
// letter or two away), values of the wrong type, keys given twice and
// syntax errors. name is the document's name for messages ("" for none).
// Fields absent from data keep the values out already holds. The error is a
// *FieldError, or errors.Join of several, one distinct mistake per line.
func DecodeStrict(name string, data []byte, out any) error {
	_, err := decodeStrict(name, data, out)
	return err
}

// decodeStrict is DecodeStrict that also returns the line of every field
// the document sets, by path ("sources[1].id").
func decodeStrict(name string, data []byte, out any) (map[string]int, error) {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, fmt.Errorf("config.DecodeStrict: out is %T, want a non-nil pointer", out)
	}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]int{}, nil
		}
		// yaml may place an error at the end of the stream, a line past
		// the last: keep it on a line the document has.
		last := 1 + bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n"))
		e := syntaxError(name, err)
		e.Line = min(e.Line, last)
		return nil, e
	}
	w := walker{file: name, lines: map[string]int{}, budget: 1 << 20}
	w.walk(&root, v.Type().Elem(), "")
	if err := joinFieldErrors(w.errs); err != nil {
		return nil, err
	}
	// The walk found nothing wrong; yaml's own strict decoding is the safety
	// net for whatever the walk does not model.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	return w.lines, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line ([0-9]+): (.*)$`)

// syntaxHints put libyaml's commonest complaints in plain words.
var syntaxHints = map[string]string{
	"mapping values are not allowed in this context":  `a ":" where none may be (check the indentation, or quote a value holding ": ")`,
	"did not find expected key":                       "a line in this block is indented unlike the keys before it",
	"did not find expected '-' indicator":             `a line in this list is indented unlike its "- " items`,
	"found character that cannot start any token":     "a character that cannot start a value (tabs may not indent; quote values starting with @ or `)",
	"could not find expected ':'":                     `a key without ":" (or an unclosed quote)`,
	"found unexpected end of stream":                  "the file ends inside a quoted value (a quote is not closed)",
	"did not find expected ',' or ']'":                `a "[" list is not closed by "]" (or lacks a ",")`,
	"did not find expected ',' or '}'":                `a "{" mapping is not closed by "}" (or lacks a ",")`,
	"found a tab character that violates indentation": "a tab indents a line near here; indent with spaces",
	"did not find expected node content":              `a value is missing (an unclosed "[" or "{", or a stray "-" or ",")`,
}

// parserErrors are the complaints of libyaml's parser, whose lines yaml
// reports counted from 0; its scanner's are counted from 1.
var parserErrors = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found undefined tag handle":             true,
}

// syntaxError turns yaml's "yaml: line 3: msg" into "NAME:3: invalid YAML: msg".
func syntaxError(name string, err error) *FieldError {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if parserErrors[msg] {
		line++
	}
	if strings.Contains(err.Error(), "yaml: ") {
		line = max(line, 1) // yaml leaves out line numbers of the first line
	}
	if hint, ok := syntaxHints[msg]; ok {
		msg = hint
	}
	return &FieldError{File: name, Line: line, Err: errors.New("invalid YAML: " + msg)}
}

// yamlError places the first of yaml's decoding complaints.
func yamlError(name string, err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.Join(strings.Fields(msg), " ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	return &FieldError{File: name, Line: line, Err: errors.New(msg)}
}

// walker checks a yaml.Node tree against a Go type the way yaml's decoder
// will read it, collecting every mistake with its line and field path.
type walker struct {
	file  string
	errs  []*FieldError
	lines map[string]int
	// budget bounds the nodes visited, aliases included.
	budget int
}

var durationType = reflect.TypeFor[time.Duration]()

func (w *walker) fail(line int, path, format string, args ...any) {
	w.errs = append(w.errs, &FieldError{File: w.file, Line: line, Path: path, Err: fmt.Errorf(format, args...)})
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if w.budget--; w.budget < 0 {
		return
	}
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == 0 || n.Kind == yaml.DocumentNode {
		return // an empty document
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // yaml keeps the value out already holds
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		w.scalar(n, t, path, "a duration (e.g. 500ms, 1s, 2m)")
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n.Line, path, "%s is not a mapping (key: value lines, or {key: value})", describe(n))
			return
		}
		w.mapping(n, path, func(key *yaml.Node) (reflect.Type, bool) {
			f, ok := fieldByTag(t, key.Value)
			if !ok {
				w.unknown(key, t, path)
				return nil, false
			}
			return f.Type, true
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n.Line, path, "%s is not a mapping (key: value lines, or {key: value})", describe(n))
			return
		}
		w.mapping(n, path, func(*yaml.Node) (reflect.Type, bool) { return t.Elem(), true })
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			w.fail(n.Line, path, `%s is not a list (one "- item" line each, or [a, b])`, describe(n))
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = item.Line
			w.walk(item, t.Elem(), p)
		}
	case reflect.Interface:
	case reflect.Bool:
		w.scalar(n, t, path, "true or false")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.ShortTag() == "!!float" { // yaml would drop the fraction
			w.fail(n.Line, path, "%s is not an integer", describe(n))
			return
		}
		w.scalar(n, t, path, "an integer")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		w.scalar(n, t, path, "a whole number >= 0")
	case reflect.Float32, reflect.Float64:
		w.scalar(n, t, path, "a number")
	default:
		w.scalar(n, t, path, "a string")
	}
}

// mapping walks the pairs of a mapping node; field returns the type of a
// key's value, or false when the key is not known (already reported).
func (w *walker) mapping(n *yaml.Node, path string, field func(key *yaml.Node) (reflect.Type, bool)) {
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind == yaml.ScalarNode && key.Value == "<<" && key.ShortTag() == "!!merge" {
			// A merge key: its mapping (or list of mappings) fills this one.
			if val.Kind == yaml.AliasNode && val.Alias != nil {
				val = val.Alias
			}
			if val.Kind == yaml.SequenceNode {
				for _, m := range val.Content {
					w.mergeInto(m, path, field)
				}
			} else {
				w.mergeInto(val, path, field)
			}
			continue
		}
		p := key.Value
		if path != "" {
			p = path + "." + key.Value
		}
		if line, dup := first[key.Value]; dup {
			w.fail(key.Line, p, "set twice (first on line %d); keep one", line)
			continue
		}
		first[key.Value] = key.Line
		t, ok := field(key)
		if !ok {
			continue
		}
		w.lines[p] = key.Line
		w.walk(val, t, p)
	}
}

func (w *walker) mergeInto(m *yaml.Node, path string, field func(*yaml.Node) (reflect.Type, bool)) {
	if m.Kind == yaml.AliasNode && m.Alias != nil {
		m = m.Alias
	}
	if m.Kind != yaml.MappingNode {
		w.fail(m.Line, path, "%s cannot be merged with <<: it is not a mapping", describe(m))
		return
	}
	w.mapping(m, path, field)
}

// scalar checks that n decodes into t exactly as yaml will decode it.
func (w *walker) scalar(n *yaml.Node, t reflect.Type, path, what string) {
	if n.Kind != yaml.ScalarNode {
		w.fail(n.Line, path, "%s is not %s", describe(n), what)
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		w.fail(n.Line, path, "%s is not %s", describe(n), what)
	}
}

// describe names a node as a message shows it: a scalar by its value.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return strconv.Quote(v)
}

func (w *walker) unknown(key *yaml.Node, t reflect.Type, path string) {
	known := knownFields(t)
	hint := ""
	if s := suggest(key.Value, known); s != "" {
		hint = fmt.Sprintf("; did you mean %q?", s)
	}
	w.fail(key.Line, path, "unknown field %s%s (known: %s)", describe(key), hint, strings.Join(known, ", "))
}

// yamlName is the key yaml reads a struct field from, or "" for none.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name)
	}
	return name
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	if key == "" {
		return reflect.StructField{}, false // unexported and "-" fields have no name
	}
	for i := range t.NumField() {
		if f := t.Field(i); yamlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// knownFields lists t's keys in declaration order.
func knownFields(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if n := yamlName(t.Field(i)); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// suggest returns the known name closest to s when it is at most two edits
// away (one for names of three letters or fewer), ignoring case and "-"
// for "_"; "" when none is that close.
func suggest(s string, known []string) string {
	norm := func(x string) string { return strings.ReplaceAll(strings.ToLower(x), "-", "_") }
	limit := 2
	if len(s) <= 3 {
		limit = 1
	}
	best, bestD := "", limit+1
	for _, k := range known {
		if d := editDistance(norm(s), norm(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and swaps of neighbours cost one each.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
