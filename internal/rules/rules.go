// Package rules turns caption records into alert records: each rule selects
// sources, matches caption keywords, a regex and attribute values, needs the
// match to hold for a while of stream time and then alerts, at most once per
// cooldown (docs/EVENTS.md, "Rules").
//
// The engine is pure: it decides on each record's pts (and, for time-of-day
// windows, its capture time), never on the wall clock, so the service, a
// replay and `lookout rules test` on a captions file give the same alerts with
// the same ids. It must see every caption record of a source in pts order,
// not only those an emit policy publishes, to measure how long a match held.
package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"lookout/internal/config"
	"lookout/sink"
)

// Schema maps an attribute slot to the values its head can give (the
// model's attributes.json); nil when the model has no attribute heads or
// is not known.
type Schema map[string][]string

// rule is one compiled config.Rule.
type rule struct {
	name     string
	sources  map[string]bool
	labels   map[string]string
	keywords []*regexp.Regexp
	re       *regexp.Regexp
	attrs    map[string]string
	minProb  float64
	minConf  float64
	window   *window
	forMs    int64
	coolMs   int64
}

// window is a time of day, [from, to) in minutes after midnight in zone;
// from > to wraps midnight.
type window struct {
	from, to int
	zone     *time.Location
}

func (w *window) contains(t time.Time) bool {
	if t.IsZero() {
		return false
	}
	lt := t.In(w.zone)
	m := lt.Hour()*60 + lt.Minute()
	if w.from < w.to {
		return m >= w.from && m < w.to
	}
	return m >= w.from || m < w.to
}

// Check reports every rule field the config cannot check alone: attribute
// slots and values the model's heads do not have. Errors name the field
// ("site.yaml:31: rules[0].attributes.light: ..."). A nil schema means the
// model is not known (nothing to check); an empty one, a model without
// attribute heads.
func Check(c config.Config, schema Schema) error {
	if schema == nil {
		return nil
	}
	var errs []error
	for i, r := range c.Rules {
		for _, slot := range slices.Sorted(maps.Keys(r.Attributes)) {
			vals, ok := schema[slot]
			if !ok {
				have := slices.Sorted(maps.Keys(schema))
				msg := "the model has no attribute heads"
				if len(have) > 0 {
					msg = "known: " + strings.Join(have, ", ")
				}
				errs = append(errs, c.RuleErr(i, "attributes."+slot, fmt.Errorf("unknown slot %q (%s)", slot, msg)))
				continue
			}
			if v := r.Attributes[slot]; !contains(vals, v) {
				errs = append(errs, c.RuleErr(i, "attributes."+slot, fmt.Errorf("unknown value %q for slot %s (known: %s)", v, slot, strings.Join(vals, ", "))))
			}
		}
	}
	return errors.Join(errs...)
}

// compile turns validated config rules into rules; config.Validate has
// checked every field, so errors here are only a safety net.
func compile(rs []config.Rule) ([]*rule, error) {
	out := make([]*rule, 0, len(rs))
	for i, r := range rs {
		cr := &rule{name: r.Name, sources: map[string]bool{}, labels: r.Labels, attrs: r.Attributes,
			minProb: r.MinProb, minConf: r.MinConfidence, forMs: r.For.Milliseconds(),
			coolMs: r.CooldownOrDefault().Milliseconds()}
		for _, id := range r.Sources {
			cr.sources[id] = true
		}
		for _, k := range r.Keywords {
			re, err := regexp.Compile(`(?i)(^|\W)` + regexp.QuoteMeta(strings.TrimSpace(k)) + `($|\W)`)
			if err != nil {
				return nil, fmt.Errorf("rules[%d].keywords: %w", i, err)
			}
			cr.keywords = append(cr.keywords, re)
		}
		if r.Regex != "" {
			re, err := regexp.Compile(r.Regex)
			if err != nil {
				return nil, fmt.Errorf("rules[%d].regex: %w", i, err)
			}
			cr.re = re
		}
		if r.Window != "" {
			from, to, err := config.ParseWindow(r.Window)
			if err != nil {
				return nil, fmt.Errorf("rules[%d].window: %w", i, err)
			}
			zone := time.UTC
			if r.Zone != "" {
				if zone, err = time.LoadLocation(r.Zone); err != nil {
					return nil, fmt.Errorf("rules[%d].zone: %w", i, err)
				}
			}
			cr.window = &window{from: from, to: to, zone: zone}
		}
		out = append(out, cr)
	}
	return out, nil
}

// selects reports whether r watches the source of rec.
func (r *rule) selects(rec *sink.Record) bool {
	if r.sources[rec.SourceID] {
		return true
	}
	if len(r.labels) == 0 {
		return false
	}
	for k, v := range r.labels {
		if rec.Labels[k] != v {
			return false
		}
	}
	return true
}

// matches reports whether one caption record satisfies every matcher.
func (r *rule) matches(rec *sink.Record) bool {
	if rec.Confidence < r.minConf {
		return false
	}
	for _, k := range r.keywords {
		if !k.MatchString(rec.Caption) {
			return false
		}
	}
	if r.re != nil && !r.re.MatchString(rec.Caption) {
		return false
	}
	for slot, want := range r.attrs {
		a, ok := rec.Attributes[slot]
		if !ok || a.Value != want || a.Prob < r.minProb {
			return false
		}
	}
	return r.window == nil || r.window.contains(rec.CaptureTime)
}

// hold is the state of one (rule, source): the current match and the last
// alert, within one run of the source.
type hold struct {
	run       string
	last      int64 // pts of the last record seen
	holding   bool
	since     int64 // pts of the first record of the current match
	alerted   bool
	lastAlert int64
}

type key struct{ rule, source string }

// Engine evaluates rules over records. It is safe for concurrent use;
// Observe is meant to be called from one goroutine per source, in pts order.
type Engine struct {
	mu    sync.Mutex
	rules []*rule
	defs  map[string]string // rule name -> its definition, to keep state across Replace
	state map[key]*hold
}

// New compiles rules (validated by config.Validate).
func New(rs []config.Rule) (*Engine, error) {
	e := &Engine{state: map[key]*hold{}}
	return e, e.Replace(rs)
}

// Replace swaps in new rules (a SIGHUP reload). A rule whose name and
// definition did not change keeps its state (a match in progress, its
// cooldown); others start afresh. On error the old rules stay.
func (e *Engine) Replace(rs []config.Rule) error {
	compiled, err := compile(rs)
	if err != nil {
		return err
	}
	defs := make(map[string]string, len(rs))
	for _, r := range rs {
		b, _ := json.Marshal(r) // plain data: cannot fail
		defs[r.Name] = string(b) + r.CooldownOrDefault().String()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k := range e.state {
		if defs[k.rule] == "" || defs[k.rule] != e.defs[k.rule] {
			delete(e.state, k)
		}
	}
	e.rules, e.defs = compiled, defs
	return nil
}

// Len returns the number of rules.
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.rules)
}

// Observe feeds one record of a source (records of each source in pts
// order) and returns the alerts it fires, in rule order. Caption records
// are matched; a gap record (the source was away) ends every match of its
// source; other kinds are ignored. A new run of a live source, or a pts
// going back (a replay started over), starts its state afresh.
func (e *Engine) Observe(rec sink.Record) []sink.Record {
	if rec.Kind != sink.KindCaption && rec.Kind != sink.KindGap {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []sink.Record
	for _, r := range e.rules {
		if !r.selects(&rec) {
			continue
		}
		k := key{r.name, rec.SourceID}
		st := e.state[k]
		if st == nil || st.run != rec.Run || rec.PTSMillis < st.last {
			st = &hold{run: rec.Run}
			e.state[k] = st
		}
		st.last = rec.PTSMillis
		if rec.Kind == sink.KindGap || !r.matches(&rec) {
			st.holding = false
			continue
		}
		if !st.holding {
			st.holding, st.since = true, rec.PTSMillis
		}
		held := rec.PTSMillis - st.since
		if held < r.forMs || (st.alerted && rec.PTSMillis-st.lastAlert < r.coolMs) {
			continue
		}
		st.alerted, st.lastAlert = true, rec.PTSMillis
		out = append(out, alertOf(rec, r.name, held))
	}
	return out
}

// alertOf is the alert record rule fires on the caption record rec: rec's
// frame, caption and attributes, with the rule, rec's id and how long the
// match held.
func alertOf(rec sink.Record, rule string, held int64) sink.Record {
	a := rec
	a.Kind = sink.KindAlert
	a.Rule = rule
	a.CaptionID = rec.ID
	a.ID = sink.AlertID(rec.ID, rule)
	a.PrevCaption = ""
	a.HeldMillis = held
	return a
}

func contains(vals []string, v string) bool {
	for _, x := range vals {
		if x == v {
			return true
		}
	}
	return false
}
