package pipeline

import (
	"context"
	"fmt"

	"gocv.io/x/gocv"

	"lookout/inference"
)

// captionTasks captions a cross-source batch whose sources may ask for
// different Florence-2 tasks: one captioner call per task (first-seen order),
// the results put back in the batch's order. A batch without tasks is one
// plain Caption call.
func (w *workerPool) captionTasks(ctx context.Context, images []gocv.Mat, tasks []string) ([]inference.Result, error) {
	var order []string
	groups := map[string][]int{}
	for i, t := range tasks {
		if _, ok := groups[t]; !ok {
			order = append(order, t)
		}
		groups[t] = append(groups[t], i)
	}
	if len(order) == 1 && order[0] == "" {
		return w.capt.Caption(ctx, images)
	}
	tc, ok := w.capt.(inference.TaskCaptioner)
	if !ok {
		return nil, fmt.Errorf("captioner %s does not run tasks", w.records.model)
	}
	out := make([]inference.Result, len(images))
	for _, t := range order {
		idx := groups[t]
		sub := make([]gocv.Mat, len(idx))
		for j, i := range idx {
			sub[j] = images[i]
		}
		res, err := tc.CaptionTask(ctx, sub, t, nil)
		if err != nil {
			return nil, err
		}
		if len(res) != len(sub) {
			return nil, fmt.Errorf("captioner %s returned %d results for %d images", w.records.model, len(res), len(sub))
		}
		for j, i := range idx {
			out[i] = res[j]
		}
	}
	return out, nil
}

// checkTask refuses a source task the captioner does not run.
func (p *Pipeline) checkTask(spec SourceSpec) error {
	if spec.Task == "" {
		return nil
	}
	if tc, ok := p.workers.capt.(inference.TaskCaptioner); ok && tc.SupportsTask(spec.Task) {
		return nil
	}
	return fmt.Errorf("pipeline: source %s: task %s needs a Florence-2 model; model %s does not run it", spec.ID, spec.Task, p.model)
}
