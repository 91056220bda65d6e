package cores

import (
	"runtime"
	"testing"
)

func TestReserve(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Setenv("GOMAXPROCS", "")
	if got := Reserve(3); got != N()+3 || runtime.GOMAXPROCS(0) != N()+3 {
		t.Fatalf("Reserve(3) = %d, GOMAXPROCS %d; want %d", got, runtime.GOMAXPROCS(0), N()+3)
	}
	if N() != n {
		t.Fatal("N changed with GOMAXPROCS")
	}
	runtime.GOMAXPROCS(n)
	t.Setenv("GOMAXPROCS", "1")
	if got := Reserve(3); got != n || runtime.GOMAXPROCS(0) != n {
		t.Fatalf("with $GOMAXPROCS set, Reserve changed GOMAXPROCS to %d", got)
	}
	t.Setenv("GOMAXPROCS", "")
	if got := Reserve(0); got != n {
		t.Fatalf("Reserve(0) = %d, want %d", got, n)
	}
}
