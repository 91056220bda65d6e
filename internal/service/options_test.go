package service

import (
	"testing"

	"github.com/rs/zerolog"

	"lookout/internal/config"
	"lookout/internal/cores"
)

// TestModelOptions: the defaults the service picks for the engine from the
// worker count and the model's size, and that explicit settings win.
func TestModelOptions(t *testing.T) {
	if got := autoSessions(9<<20, 2); got != 2 {
		t.Errorf("a 9 MiB model, 2 workers: %d session copies, want 2", got)
	}
	if got := autoSessions(1<<30, 4); got != 1 {
		t.Errorf("a 1 GiB model, 4 workers: %d session copies, want 1 (shared)", got)
	}
	if got := autoSessions(0, 0); got != 1 {
		t.Errorf("no workers: %d session copies, want 1", got)
	}
	o := modelOptions(config.Model{Dir: t.TempDir()}, 2, zerolog.Nop())
	if o.Sessions != 2 || o.IntraOpThreads != max(1, cores.N()/2) {
		t.Errorf("defaults with 2 workers: sessions %d, intra-op threads %d", o.Sessions, o.IntraOpThreads)
	}
	o = modelOptions(config.Model{Dir: t.TempDir(), Sessions: 1, IntraOpThreads: 3}, 2, zerolog.Nop())
	if o.Sessions != 1 || o.IntraOpThreads != 3 {
		t.Errorf("explicit settings: sessions %d, intra-op threads %d; want 1, 3", o.Sessions, o.IntraOpThreads)
	}
}
