package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// captionOutputs are caption's output files. Unless appendJSONL, each is
// written to its partial path and renamed over the target at the end.
type captionOutputs struct {
	jsonl, video string
	appendJSONL  bool
}

// partialPath is where path is written until the run succeeds:
// captions.jsonl -> captions.partial.jsonl (the extension stays last, as
// OpenCV picks the container by it).
func partialPath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + ".partial" + ext
}

func (o captionOutputs) replacesJSONL() bool {
	return o.jsonl != "" && o.jsonl != "-" && !o.appendJSONL
}

// writePaths are the paths the sinks open.
func (o captionOutputs) writePaths() (jsonl, video string) {
	jsonl, video = o.jsonl, o.video
	if o.replacesJSONL() {
		jsonl = partialPath(o.jsonl)
	}
	if video != "" {
		video = partialPath(video)
	}
	return jsonl, video
}

// prepare removes partial files an earlier run left, so that the JSONL sink
// (which appends) starts empty.
func (o captionOutputs) prepare() error {
	for flag, target := range map[string]string{"--out": o.jsonl, "--video": o.video} {
		if target == "" || target == "-" {
			continue
		}
		dir := filepath.Dir(target)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return usagef("caption: %s %s: folder %s does not exist; create it or pick another path", flag, target, dir)
		}
		if st, err := os.Stat(target); err == nil && st.IsDir() {
			return usagef("caption: %s %s is a folder; give a file path", flag, target)
		}
	}
	jsonl, video := o.writePaths()
	for _, p := range []string{jsonl, video} {
		if p == "" || p == o.jsonl || p == "-" {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot remove %s left by an earlier run: %v", p, unwrapPath(err))
		}
	}
	return nil
}

// commit renames the partial files over their targets.
func (o captionOutputs) commit() error {
	jsonl, video := o.writePaths()
	var errs []error
	if o.replacesJSONL() {
		if err := os.Rename(jsonl, o.jsonl); err != nil {
			errs = append(errs, fmt.Errorf("captions are in %s but renaming it to %s failed: %v", jsonl, o.jsonl, unwrapPath(err)))
		}
	}
	if o.video != "" {
		if _, err := os.Stat(video); err == nil {
			if err := os.Rename(video, o.video); err != nil {
				errs = append(errs, fmt.Errorf("annotated video is in %s but renaming it to %s failed: %v", video, o.video, unwrapPath(err)))
			}
		}
	}
	return errors.Join(errs...)
}

// partials describes what a run that did not finish left, for its last line.
func (o captionOutputs) partials(captions int64) string {
	jsonl, video := o.writePaths()
	var parts []string
	switch {
	case o.replacesJSONL():
		parts = append(parts, fmt.Sprintf("%d captions kept in %s (%s left as it was)", captions, jsonl, o.jsonl))
	case o.jsonl != "" && o.jsonl != "-":
		parts = append(parts, fmt.Sprintf("%d captions appended to %s", captions, o.jsonl))
	default:
		parts = append(parts, fmt.Sprintf("%d captions written", captions))
	}
	if o.video != "" {
		if _, err := os.Stat(video); err == nil {
			parts = append(parts, fmt.Sprintf("annotated video kept in %s", video))
		}
	}
	return strings.Join(parts, "; ")
}

// unwrapPath drops the *fs.PathError wrapper when the message names the
// path already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// written names the files a finished run wrote, for a last line.
func (o captionOutputs) written() string {
	var s string
	if o.jsonl != "" && o.jsonl != "-" {
		s += " to " + o.jsonl
	}
	if o.video != "" {
		s += ", annotated video to " + o.video
	}
	return s
}
