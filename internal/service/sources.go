package service

import (
	"context"
	"time"

	"lookout/ingest"
)

// openSampled opens one source for the pipeline: live sources reconnect on
// their own, and every source is wrapped in its sampler. A replay resumes
// after resumeAfterMillis when it is not negative (its checkpoint).
func openSampled(ctx context.Context, spec ingest.SourceSpec, sc ingest.SampleConfig, rc ingest.ReconnectConfig,
	resumeAfterMillis int64, m ingest.Metrics) (ingest.Source, error) {
	var resume time.Duration
	if resumeAfterMillis >= 0 {
		resume = time.Duration(resumeAfterMillis) * time.Millisecond
		spec.StartAt = resume + time.Millisecond
	}
	src, err := ingest.OpenReconnecting(ctx, spec, rc)
	if err != nil {
		return nil, err
	}
	smp, err := ingest.NewSampler(src, spec.ID, sc, m)
	if err != nil {
		_ = src.Close()
		return nil, err
	}
	if resumeAfterMillis >= 0 {
		smp.ResumeAfter(resume)
	}
	return smp, nil
}

// CheckFileInput refuses a file source whose file is not there (a replay
// would fail at once and leave nothing running). Other kinds pass: a camera
// may come up later.
func CheckFileInput(loc ingest.Location) error {
	if loc.Kind != ingest.KindFile {
		return nil
	}
	return ingest.CheckFile(loc.Path)
}
