package sink

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"lookout/internal/recordschema"
)

func compileRecordSchema(t *testing.T) *recordschema.Schema {
	t.Helper()
	sch, err := recordschema.Load("../docs/record.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func validateJSON(t *testing.T, sch *recordschema.Schema, b []byte) error {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("not JSON: %s", b)
	}
	return sch.Validate(b)
}

func TestMarshalledRecordsMatchSchema(t *testing.T) {
	sch := compileRecordSchema(t)
	gap := testRecord("cam-2", 7)
	gap.Kind, gap.GapMillis, gap.Caption, gap.Attributes = KindGap, 12000, "", nil
	gap.ID = RecordID(gap.SourceID, gap.Run, gap.PTSMillis, gap.ModelDigest, KindGap)
	bare := testRecord("cam_3", 0)
	bare.Labels, bare.Attributes = nil, nil
	alert := testRecord("cam1", 3)
	alert.Kind, alert.Rule, alert.CaptionID, alert.HeldMillis = KindAlert, "crossing-on-green", alert.ID, 2000
	alert.ID = AlertID(alert.CaptionID, alert.Rule)
	for name, r := range map[string]Record{"caption": testRecord("cam1", 3), "gap": gap, "bare": bare, "alert": alert} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateJSON(t, sch, b); err != nil {
			t.Errorf("%s record %s does not match the schema: %v", name, b, err)
		}
	}
}

func TestSchemaRejectsBadRecords(t *testing.T) {
	sch := compileRecordSchema(t)
	good, _ := json.Marshal(testRecord("cam1", 1))
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := map[string][]byte{
		"missing id":         mutate(func(m map[string]any) { delete(m, "id") }),
		"bad id":             mutate(func(m map[string]any) { m["id"] = "XYZ" }),
		"wrong version":      mutate(func(m map[string]any) { m["schema_version"] = 2 }),
		"unknown field":      mutate(func(m map[string]any) { m["extra"] = 1 }),
		"confidence > 1":     mutate(func(m map[string]any) { m["confidence"] = 1.5 }),
		"bad capture time":   mutate(func(m map[string]any) { m["capture_time"] = "yesterday" }),
		"gap without gap_ms": mutate(func(m map[string]any) { m["kind"] = "gap" }),
		"bad kind":           mutate(func(m map[string]any) { m["kind"] = "warning" }),
		"alert without rule": mutate(func(m map[string]any) { m["kind"] = "alert"; m["caption_id"] = m["id"] }),
		"alert bad rule":     mutate(func(m map[string]any) { m["kind"] = "alert"; m["caption_id"] = m["id"]; m["rule"] = "a b" }),
	}
	for name, b := range cases {
		if err := validateJSON(t, sch, b); err == nil {
			t.Errorf("%s: schema accepted %s", name, b)
		}
	}
}

// Every JSON field of Record (and its nested types) is described by the
// schema, and the schema describes no field Record lacks.
func TestSchemaCoversRecordFields(t *testing.T) {
	raw, err := os.ReadFile("../docs/record.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties map[string]struct {
			Properties           map[string]any `json:"properties"`
			AdditionalProperties any            `json:"additionalProperties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	fields := jsonFields(reflect.TypeOf(Record{}))
	for _, f := range fields {
		if _, ok := s.Properties[f]; !ok {
			t.Errorf("Record field %q is missing from docs/record.schema.json", f)
		}
	}
	if len(s.Properties) != len(fields) {
		t.Errorf("schema has %d properties, Record has %d fields (%v)", len(s.Properties), len(fields), fields)
	}
	lat := jsonFields(reflect.TypeOf(Latency{}))
	if got := len(s.Properties["latency_ms"].Properties); got != len(lat) {
		t.Errorf("latency_ms: schema has %d properties, Latency has %d", got, len(lat))
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
