package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Rule turns caption records into alert records (docs/EVENTS.md, "Rules").
// A rule selects sources, matches each of their caption records, and fires
// an alert once the match has held for For of stream time; while it keeps
// holding it fires again at most once per Cooldown, and a new match fires no
// sooner than Cooldown after the last alert. Every matcher that is set must
// match; a rule with no matchers matches every record (its cooldown is then
// its rate).
type Rule struct {
	// Name names the rule in alert records. Required, unique,
	// [A-Za-z0-9._-]+.
	Name string `yaml:"name"`
	// Sources are the ids of the sources the rule watches.
	Sources []string `yaml:"sources"`
	// Labels select every source whose labels include all of these (also
	// sources added later over HTTP). Sources or Labels is required; with
	// both, a source matching either is watched.
	Labels map[string]string `yaml:"labels"`
	// Keywords must all appear in the caption, as whole words or phrases,
	// ignoring case.
	Keywords []string `yaml:"keywords"`
	// Regex must match the caption (Go RE2 syntax; (?i) ignores case).
	Regex string `yaml:"regex"`
	// Attributes maps an attribute slot (the model's attribute heads, e.g.
	// light) to the value it must have (green). Checked against the model's
	// attributes.json when the model is loaded.
	Attributes map[string]string `yaml:"attributes"`
	// MinProb is the least probability an attribute value needs to count,
	// in [0, 1]. Default 0.
	MinProb float64 `yaml:"min_prob"`
	// MinConfidence is the least caption confidence a record needs to
	// match, in [0, 1]. Default 0.
	MinConfidence float64 `yaml:"min_confidence"`
	// Window limits matching to a time of day, "HH:MM-HH:MM" of the
	// record's capture time in Zone; a window may wrap midnight
	// (22:00-06:00). Default: all day.
	Window string `yaml:"window"`
	// Zone is the IANA time zone of Window, e.g. Europe/Berlin.
	// Default "UTC".
	Zone string `yaml:"zone"`
	// For is how long, in stream time (pts), the match must hold before an
	// alert: from its first matching record to the current one. Default 0:
	// the first matching record alerts.
	For time.Duration `yaml:"for"`
	// Cooldown is the least stream time between two alerts of this rule on
	// one source. Default 60s; must be > 0.
	Cooldown *time.Duration `yaml:"cooldown"`
}

// DefaultCooldown is a rule's cooldown when the file sets none.
const DefaultCooldown = time.Minute

// CooldownOrDefault returns r.Cooldown, or DefaultCooldown when unset.
func (r Rule) CooldownOrDefault() time.Duration {
	if r.Cooldown == nil {
		return DefaultCooldown
	}
	return *r.Cooldown
}

var (
	ruleName   = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	slotName   = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	windowSpec = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$`)
)

// ParseWindow reads "HH:MM-HH:MM" into minutes after midnight.
func ParseWindow(s string) (from, to int, err error) {
	m := windowSpec.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, 0, fmt.Errorf("%q is not HH:MM-HH:MM (24-hour clock, e.g. 07:00-19:30)", s)
	}
	atoi := func(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }
	from, to = atoi(m[1])*60+atoi(m[2]), atoi(m[3])*60+atoi(m[4])
	if from == to {
		return 0, 0, fmt.Errorf("%q is empty (from equals to); leave window out for all day", s)
	}
	return from, to, nil
}

// ruleProblems lists every invalid field of the rules section.
func (c Config) ruleProblems() []problem {
	var errs []problem
	bad := func(field, format string, args ...any) {
		errs = append(errs, problem{field: field, msg: fmt.Sprintf(format, args...)})
	}
	sources := map[string]bool{}
	for _, s := range c.Sources {
		sources[s.ID] = true
	}
	seen := map[string]int{}
	for i, r := range c.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		if !ruleName.MatchString(r.Name) {
			bad(f+".name", "%q must be non-empty and use only letters, digits, '.', '_' and '-'", r.Name)
		} else if j, dup := seen[r.Name]; dup {
			errs = append(errs, problem{field: f + ".name", msg: fmt.Sprintf("%q is used by another rule", r.Name), other: fmt.Sprintf("rules[%d].name", j)})
		} else {
			seen[r.Name] = i
		}
		if len(r.Sources) == 0 && len(r.Labels) == 0 {
			bad(f+".sources", "the rule selects no source: list source ids in sources, or labels the sources carry")
		}
		for j, id := range r.Sources {
			if !sources[id] {
				bad(fmt.Sprintf("%s.sources[%d]", f, j), "%q is not a configured source (known: %s)", id, strings.Join(slices.Sorted(maps.Keys(sources)), ", "))
			}
		}
		for j, k := range r.Keywords {
			if strings.TrimSpace(k) == "" {
				bad(fmt.Sprintf("%s.keywords[%d]", f, j), "must not be empty")
			}
		}
		if r.Regex != "" {
			if _, err := regexp.Compile(r.Regex); err != nil {
				bad(f+".regex", "does not compile: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
		}
		for _, slot := range slices.Sorted(maps.Keys(r.Attributes)) {
			if !slotName.MatchString(slot) {
				bad(f+".attributes."+slot, "%q is not a slot name (letters, digits and '_')", slot)
			} else if strings.TrimSpace(r.Attributes[slot]) == "" {
				bad(f+".attributes."+slot, "needs a value")
			}
		}
		if r.MinProb < 0 || r.MinProb > 1 {
			bad(f+".min_prob", "must be between 0 and 1, got %g", r.MinProb)
		}
		if r.MinConfidence < 0 || r.MinConfidence > 1 {
			bad(f+".min_confidence", "must be between 0 and 1, got %g", r.MinConfidence)
		}
		if r.Window != "" {
			if _, _, err := ParseWindow(r.Window); err != nil {
				bad(f+".window", "%v", err)
			}
		}
		if r.Zone != "" {
			if _, err := time.LoadLocation(r.Zone); err != nil {
				bad(f+".zone", "%q is not a known time zone (IANA name such as Europe/Berlin)", r.Zone)
			}
			if r.Window == "" {
				bad(f+".zone", "only applies with window")
			}
		}
		if r.For < 0 {
			bad(f+".for", "must be >= 0, got %s", r.For)
		}
		if r.Cooldown != nil && *r.Cooldown <= 0 {
			bad(f+".cooldown", "must be > 0 (it bounds how often the rule alerts), got %s", *r.Cooldown)
		}
	}
	return errs
}

// RuleErr places err at a field of rules[i], as the config's own errors
// are: "site.yaml:31: rules[0].attributes.light: <err>". For checks made
// outside this package, such as slots against the model's attributes.
func (c Config) RuleErr(i int, field string, err error) *FieldError {
	return c.FieldErr(fmt.Sprintf("rules[%d].%s", i, field), err)
}
