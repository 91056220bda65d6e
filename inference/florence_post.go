package inference

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Florence-2 task tokens lookout runs, with the prompt each one stands for
// (Florence2Processor's task_prompts_without_inputs, transformers 4.57).
const (
	TaskCaption             = "<CAPTION>"
	TaskDetailedCaption     = "<DETAILED_CAPTION>"
	TaskMoreDetailedCaption = "<MORE_DETAILED_CAPTION>"
	TaskOD                  = "<OD>"
	TaskOCR                 = "<OCR>"
)

var taskPrompts = map[string]string{
	TaskCaption:             "What does the image describe?",
	TaskDetailedCaption:     "Describe in detail what is shown in the image.",
	TaskMoreDetailedCaption: "Describe with a paragraph what is shown in the image.",
	TaskOD:                  "Locate the objects with category name in the image.",
	TaskOCR:                 "What is the text in the image?",
}

// Tasks lists the Florence-2 task tokens lookout supports, sorted.
func Tasks() []string {
	out := make([]string, 0, len(taskPrompts))
	for t := range taskPrompts {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// KnownTask reports whether task is a supported Florence-2 task token.
func KnownTask(task string) bool { _, ok := taskPrompts[task]; return ok }

// Object is one detected object: a label and a box [x1, y1, x2, y2] in the
// pixels of the image as given (the frame), as Florence-2's post-processing
// computes it.
type Object struct {
	Label string `json:"label"`
	Box   [4]int `json:"box"`
}

// florencePureText is post_process_generation's "pure_text": the decoded text
// (special tokens kept) without <s> and </s>, trimmed.
func florencePureText(text string) string {
	text = strings.ReplaceAll(text, "<s>", "")
	text = strings.ReplaceAll(text, "</s>", "")
	return strings.TrimFunc(text, unicode.IsSpace)
}

var (
	odPhrase = regexp.MustCompile(`([^<]+(?:<loc_\d+>){4,})`)
	odBox    = regexp.MustCompile(`<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>`)
	// odLabelEnd are the markers the label runs up to (Python's lookahead
	// (?=<od>|</od>|<box>|</box>|<bbox>|</bbox>|<loc_)).
	odLabelEnd = []string{"<od>", "</od>", "<box>", "</box>", "<bbox>", "</bbox>", "<loc_"}
)

// florenceObjects parses an <OD> answer the way Florence2PostProcessor's
// parse_description_with_bboxes_from_text_and_spans does: phrases of a label
// followed by groups of four <loc_N> bins (1000 per axis), each box the bins'
// centres scaled to width x height and truncated to integers.
func florenceObjects(text string, width, height int) []Object {
	text = strings.NewReplacer("<s>", "", "</s>", "", "<pad>", "").Replace(text)
	var out []Object
	for _, phrase := range odPhrase.FindAllString(text, -1) {
		phrase = strings.Replace(phrase, "<ground>", "", 1)
		phrase = strings.Replace(phrase, "<obj>", "", 1)
		if phrase == "" {
			continue
		}
		label, ok := odLabel(phrase)
		if !ok {
			continue
		}
		for _, b := range odBox.FindAllStringSubmatch(phrase, -1) {
			var bins [4]int64
			for j := range bins {
				v, err := strconv.ParseInt(b[j+1], 10, 64)
				if err != nil {
					v = 1 << 40 // beyond any bin; Python's int() would not fail, the box is absurd either way
				}
				bins[j] = v
			}
			out = append(out, Object{Label: label, Box: dequantize(bins, width, height)})
		}
	}
	return out
}

// odLabel is Python's re.search(r"^\s*(.*?)(?=<od>|...|<loc_)", phrase).group().strip()
// with non-ASCII characters dropped; ok is false when there is no match.
func odLabel(phrase string) (string, bool) {
	rest := strings.TrimLeftFunc(phrase, unicode.IsSpace)
	end := -1
	for _, m := range odLabelEnd {
		if i := strings.Index(rest, m); i >= 0 && (end < 0 || i < end) {
			end = i
		}
	}
	if end < 0 || strings.Contains(rest[:end], "\n") {
		return "", false // "." does not cross a newline
	}
	label := strings.TrimFunc(rest[:end], unicode.IsSpace)
	var b strings.Builder
	for _, r := range label {
		if r < 128 {
			b.WriteRune(r)
		}
	}
	return b.String(), true
}

// dequantize maps bins to pixels as Florence2PostProcessor.dequantize does in
// float32 torch arithmetic: int((bin + 0.5) * (size / 1000)).
func dequantize(bins [4]int64, width, height int) [4]int {
	pw := float32(float64(width) / 1000)
	ph := float32(float64(height) / 1000)
	var out [4]int
	for j, b := range bins {
		per := pw
		if j%2 == 1 {
			per = ph
		}
		out[j] = int(int32((float32(b) + 0.5) * per))
	}
	return out
}

// florenceAnswer fills a Result from the decoded text (special tokens kept)
// for task on a width x height image.
func florenceAnswer(r *Result, task, text string, width, height int) {
	switch task {
	case TaskOD:
		r.Objects = florenceObjects(text, width, height)
		labels := make([]string, len(r.Objects))
		for i, o := range r.Objects {
			labels[i] = o.Label
		}
		r.Caption = strings.Join(labels, ", ")
	case TaskOCR:
		r.OCR = florencePureText(text)
		r.Caption = r.OCR
	default:
		r.Caption = florencePureText(text)
	}
	r.Task = task
}

// checkTask returns an error naming the supported tasks.
func checkTask(task string) error {
	if KnownTask(task) {
		return nil
	}
	return fmt.Errorf("task %q is not supported; use one of %s", task, strings.Join(Tasks(), ", "))
}
