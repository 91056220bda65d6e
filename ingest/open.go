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
	// Logger receives the source's messages, with field "source" set to the
	// ID. Default: no logging.
	Logger zerolog.Logger
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
	live := LiveOptions{ID: spec.ID, OpenTimeout: spec.OpenTimeout, ReadTimeout: spec.ReadTimeout,
		FailedReads: spec.FailedReads, ProbeDuration: spec.ProbeDuration, Logger: spec.Logger}
	switch loc.Kind {
	case KindFile:
		return OpenFile(ctx, loc.Path, FileOptions{ID: spec.ID, Realtime: spec.Realtime, StartAt: spec.StartAt, Logger: spec.Logger})
	case KindRTSP:
		return OpenRTSP(ctx, loc, live)
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
	rc.Logger = spec.Logger
	return NewReconnecting(id, func(ctx context.Context) (Source, error) {
		return OpenLocation(ctx, loc, spec)
	}, rc), nil
}
