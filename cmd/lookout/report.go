package main

import (
	"fmt"
	"os"
	"path/filepath"

	"lookout/internal/report"
	"lookout/synth/corpus"
)

// captionReport is caption's --report: the records and thumbnails collected
// during the run, written as one HTML file at the end.
type captionReport struct {
	path      string
	truth     []corpus.TruthLine
	inputs    []string
	collector *report.Collector
}

// newCaptionReport checks --report and --truth before anything runs.
func newCaptionReport(path, truthPath string, inputs []string) (*captionReport, error) {
	if path == "" {
		if truthPath != "" {
			return nil, usagef("caption: --truth needs --report FILE (the report marks the captions that differ)")
		}
		return nil, nil
	}
	r := &captionReport{path: path, inputs: inputs, collector: report.NewCollector()}
	if truthPath != "" {
		if len(inputs) != 1 {
			return nil, usagef("caption: --truth scores one input, got %d", len(inputs))
		}
		truth, err := corpus.ReadTruthFile(truthPath)
		if err != nil {
			return nil, usagef("caption: --truth: %w", err)
		}
		if len(truth) == 0 {
			return nil, usagef("caption: --truth: %s holds no truth lines", truthPath)
		}
		r.truth = truth
	}
	if err := checkWritableDir(path); err != nil {
		return nil, usagef("caption: --report %s: %w", path, err)
	}
	return r, nil
}

// checkWritableDir fails early when the report's folder is missing.
func checkWritableDir(path string) error {
	st, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a folder", filepath.Dir(path))
	}
	return nil
}

// write writes the report beside its target and renames it into place, so
// a failed write leaves the previous report as it was.
func (r *captionReport) write() (report.Summary, error) {
	tmp := r.path + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return report.Summary{}, fmt.Errorf("--report: %w", err)
	}
	sum, err := r.collector.WriteHTML(f, report.Options{Inputs: r.inputs, Truth: r.truth})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, r.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return sum, fmt.Errorf("--report %s: %w", r.path, err)
	}
	return sum, nil
}

// finish writes the report, when one was asked for, and says so in one
// line.
func (rep *captionReport) finish() error {
	if rep == nil {
		return nil
	}
	sum, err := rep.write()
	if err != nil {
		return err
	}
	line := fmt.Sprintf("lookout: report %s: %d captions, %d thumbnails, %d gaps", rep.path, sum.Captions, sum.Thumbnails, sum.Gaps)
	if rep.truth != nil {
		line += fmt.Sprintf(", %d of %d scored captions differ from the truth", sum.Mismatches, sum.Scored)
	}
	fmt.Fprintln(os.Stderr, line)
	return nil
}
