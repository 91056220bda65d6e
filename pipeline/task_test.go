package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"lookout/inference"
)

// taskCaptioner answers "task:width" per image and records each call's task and size.
type taskCaptioner struct {
	calls []string
}

func (c *taskCaptioner) Caption(ctx context.Context, images []gocv.Mat) ([]inference.Result, error) {
	return c.CaptionTask(ctx, images, "", nil)
}
func (c *taskCaptioner) CaptionTask(_ context.Context, images []gocv.Mat, task string, _ *inference.GenerationOptions) ([]inference.Result, error) {
	c.calls = append(c.calls, fmt.Sprintf("%s x%d", task, len(images)))
	out := make([]inference.Result, len(images))
	for i, im := range images {
		out[i] = inference.Result{Caption: fmt.Sprintf("%s:%d", task, im.Cols()), Task: task}
	}
	return out, nil
}
func (c *taskCaptioner) SupportsTask(task string) bool { return task == "<OD>" || task == "<OCR>" }
func (c *taskCaptioner) Name() string                  { return "tasks" }
func (c *taskCaptioner) Digest() string                { return "0" }
func (c *taskCaptioner) Close() error                  { return nil }

// TestCaptionTasksGroupsByTask: a cross-source batch whose sources ask for
// different tasks makes one call per task, and every frame gets its own
// source's answer in batch order.
func TestCaptionTasksGroupsByTask(t *testing.T) {
	capt := &taskCaptioner{}
	p := New(Config{}, capt, nil, zerolog.Nop(), nil)
	var images []gocv.Mat
	for w := 1; w <= 4; w++ {
		m := gocv.NewMatWithSize(2, w, gocv.MatTypeCV8UC3)
		defer m.Close()
		images = append(images, m)
	}
	res, err := p.workers.captionTasks(context.Background(), images, []string{"<OD>", "", "<OD>", "<OCR>"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		got = append(got, r.Caption)
	}
	if want := "<OD>:1 :2 <OD>:3 <OCR>:4"; strings.Join(got, " ") != want {
		t.Errorf("answers %q, want %q", strings.Join(got, " "), want)
	}
	if want := "<OD> x2| x1|<OCR> x1"; strings.Join(capt.calls, "|") != want {
		t.Errorf("calls %q, want %q", strings.Join(capt.calls, "|"), want)
	}
}

// TestAddSourceRefusesUnsupportedTask: a task the captioner does not run is
// refused when the source is added, not frame by frame.
func TestAddSourceRefusesUnsupportedTask(t *testing.T) {
	p := New(Config{}, newFakeCaptioner(), nil, zerolog.Nop(), nil)
	err := p.AddSource(SourceSpec{ID: "cam", Task: "<OD>"}, nil)
	if err == nil || !strings.Contains(err.Error(), "task <OD> needs a Florence-2 model") {
		t.Fatalf("want a task refusal, got %v", err)
	}
	p = New(Config{}, &taskCaptioner{}, nil, zerolog.Nop(), nil)
	if err := p.checkTask(SourceSpec{ID: "cam", Task: "<OCR>"}); err != nil {
		t.Fatalf("task captioner refused <OCR>: %v", err)
	}
}
