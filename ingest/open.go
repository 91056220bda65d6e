package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// SourceSpec says which source to open and how. Only URI is required.
type SourceSpec struct {
	// ID names the source in frames, logs and metrics. Default: the URI with
	// its password redacted. An ID that holds a URI password is redacted too.
	ID string
	// URI is a source URI (see ParseURI).
	URI string
	// Realtime paces file replay at native speed (files only). Default false.
	Realtime bool
	// StartAt skips file frames before this PTS (files only). Default 0.
	StartAt time.Duration
	// OpenTimeout bounds opening an RTSP stream or device. Default 10 s.
	OpenTimeout time.Duration
	// ReadTimeout bounds one blocking RTSP read. Default 5 s.
	ReadTimeout time.Duration
	// FailedReads in a row that mean a live disconnect. Default 3.
	FailedReads int
	// ProbeDuration caps FFmpeg's stream analysis at an RTSP open (see
	// LiveOptions). Default 0: FFmpeg's own.
	ProbeDuration time.Duration
	// Decode says which frames of a file or RTSP stream are decoded (see
	// Decode). Default "" = DecodeAuto.
	Decode Decode
	// SampleEvery is the sampling interval of the Sampler that will read the
	// source (0: every frame). Decoding uses it: frames the sampler would
	// drop are not converted, and DecodeAuto compares it with the keyframe
	// interval. Default 0.
	SampleEvery time.Duration
	// Metrics, when it is a DecodeReporter, is told how the source decodes.
	// Default: none.
	Metrics Metrics
	// Logger receives the source's messages, with field "source" set to the
	// ID. Default: no logging.
	Logger zerolog.Logger

	// choice carries DecodeAuto's decision across a source's reopens.
	choice *decodeChoice
}

// Open parses spec.URI and opens the source it names, once: wrap live
// sources in a Reconnecting (see OpenReconnecting) to survive outages.
// Errors are one line and name the source with its password redacted; a
// failure a retry may cure (camera unreachable, device missing) wraps
// ErrTransient, all others (bad URI, missing or undecodable file) are fatal.
func Open(ctx context.Context, spec SourceSpec) (Source, error) {
	loc, err := ParseURI(spec.URI)
	if err != nil {
		return nil, err
	}
	return OpenLocation(ctx, loc, spec)
}

// OpenLocation opens an already parsed location with spec's options
// (spec.URI is ignored).
func OpenLocation(ctx context.Context, loc Location, spec SourceSpec) (Source, error) {
	spec.ID = Redact(spec.ID) // an id copied from a URI must not carry its password
	policy := spec.Decode
	if policy == "" {
		policy = DecodeAuto
	}
	if spec.choice == nil {
		spec.choice = &decodeChoice{}
	}
	live := LiveOptions{ID: spec.ID, OpenTimeout: spec.OpenTimeout, ReadTimeout: spec.ReadTimeout,
		FailedReads: spec.FailedReads, ProbeDuration: spec.ProbeDuration, Logger: spec.Logger,
		SampleEvery: spec.SampleEvery}
	switch loc.Kind {
	case KindFile:
		fo := FileOptions{ID: spec.ID, Realtime: spec.Realtime, StartAt: spec.StartAt, Logger: spec.Logger, SampleEvery: spec.SampleEvery}
		var interval time.Duration
		fo.Keyframes, interval = spec.keyframesOnly(ctx, policy, func(ctx context.Context) (time.Duration, bool) {
			return probeFileKeyframes(ctx, loc.Path, spec.SampleEvery)
		})
		src, err := OpenFile(ctx, loc.Path, fo)
		if err == nil {
			spec.report(fo.Keyframes, interval)
		}
		return src, err
	case KindRTSP:
		var interval time.Duration
		live.Keyframes, interval = spec.keyframesOnly(ctx, policy, func(ctx context.Context) (time.Duration, bool) {
			return probeRTSPKeyframes(ctx, loc, live)
		})
		src, err := OpenRTSP(ctx, loc, live)
		if err == nil {
			spec.report(live.Keyframes, interval)
		}
		return src, err
	case KindDevice:
		return OpenDevice(ctx, loc, live)
	case KindSynth:
		return OpenSynth(loc, spec.ID, spec.Logger)
	}
	return nil, fmt.Errorf("source %q: unknown source kind: %s", loc.Redacted, uriHelp)
}

// OpenReconnecting opens spec's source for a long-running service: files
// are opened once (a missing file is an error now), live sources are
// wrapped in a Reconnecting that opens them on the first Next and reopens
// them after every outage. The URI is checked now either way. rc.Logger is
// replaced by spec.Logger.
func OpenReconnecting(ctx context.Context, spec SourceSpec, rc ReconnectConfig) (Source, error) {
	loc, err := ParseURI(spec.URI)
	if err != nil {
		return nil, err
	}
	if !loc.Kind.Live() {
		return OpenLocation(ctx, loc, spec)
	}
	id := Redact(spec.ID)
	if id == "" {
		id = loc.Redacted
	}
	spec.ID = id
	spec.choice = &decodeChoice{} // shared by the reopens: measured once
	rc.Logger = spec.Logger
	return NewReconnecting(id, func(ctx context.Context) (Source, error) {
		return OpenLocation(ctx, loc, spec)
	}, rc), nil
}

// keyframesOnly applies the decode policy: keyframes, all, or (auto) the
// decision measure makes on the first opening, remembered for the reopens.
// It returns whether to decode keyframes only and the keyframe interval
// measured (0 if not measured). Auto decodes everything when the sampling
// interval is 0 (every frame is wanted) or the interval cannot be measured.
func (spec SourceSpec) keyframesOnly(ctx context.Context, policy Decode, measure func(context.Context) (time.Duration, bool)) (bool, time.Duration) {
	switch {
	case policy == DecodeKeyframes:
		return true, 0
	case policy != DecodeAuto || spec.SampleEvery <= 0:
		return false, 0
	}
	if decided, keyOnly, interval := spec.choice.get(); decided {
		return keyOnly, interval
	}
	interval, ok := measure(ctx)
	keyOnly := ok && interval <= spec.SampleEvery+autoSlack
	if ctx.Err() != nil {
		return false, 0 // not decided: the next opening measures again
	}
	spec.choice.set(keyOnly, interval)
	ev := spec.Logger.Info().Str("source", spec.ID).Int64("sample_every_ms", spec.SampleEvery.Milliseconds())
	switch {
	case !ok:
		ev.Msg("decode auto: no steady keyframe interval (too few keyframes, timestamps out of order, or keyframes at irregular intervals); decoding every frame")
	case keyOnly:
		ev.Int64("keyframe_interval_ms", interval.Milliseconds()).Msg("decode auto: keyframes only (the keyframe interval is within the sampling interval)")
	default:
		ev.Int64("keyframe_interval_ms", interval.Milliseconds()).Msg("decode auto: every frame (the keyframe interval exceeds the sampling interval)")
	}
	return keyOnly, interval
}

// report tells spec.Metrics how the source decodes.
func (spec SourceSpec) report(keyOnly bool, interval time.Duration) {
	if r, ok := spec.Metrics.(DecodeReporter); ok {
		r.DecodeChosen(spec.ID, keyOnly, interval)
	}
}
