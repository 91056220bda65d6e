package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"lookout/sink"
)

// testRecord is a caption record of source src at second i.
func testRecord(src string, i int) sink.Record {
	pts := int64(i) * 1000
	return sink.Record{SchemaVersion: sink.SchemaVersion, ID: sink.RecordID(src, "", pts, "sha256:test", sink.KindCaption),
		Kind: sink.KindCaption, SourceID: src, PTSMillis: pts, Caption: fmt.Sprintf("frame %d of %s", i, src)}
}

func spoolItems(src string, live bool, from, n int) []Item {
	out := make([]Item, n)
	for i := range out {
		b, _ := json.Marshal(testRecord(src, from+i))
		out[i] = Item{SourceID: src, Live: live, Payload: b}
	}
	return out
}

func captions(t *testing.T, es []Entry) []string {
	t.Helper()
	out := make([]string, len(es))
	for i, e := range es {
		var r sink.Record
		if err := json.Unmarshal(e.Payload, &r); err != nil {
			t.Fatalf("entry %d is not a record: %v", i, err)
		}
		if r.SourceID != e.SourceID {
			t.Fatalf("entry %d: source %q, record says %q", i, e.SourceID, r.SourceID)
		}
		out[i] = r.Caption
	}
	return out
}

func wantCaptions(src string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = testRecord(src, from+i).Caption
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func openTestSpool(t *testing.T, cfg Config) *Spool {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSpoolOrderAckAndReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4 << 10}
	s := openTestSpool(t, cfg)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := s.Append(ctx, spoolItems("cam1", false, i*10, 10), Block); err != nil {
			t.Fatal(err)
		}
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) < 3 {
		t.Fatalf("expected several segments of 4 KiB, got %d", len(segs))
	}
	if st := s.Stats(); st.Records != 100 || st.OldestUnsent.IsZero() || st.Bytes <= 0 {
		t.Fatalf("stats after 100 appends: %+v", st)
	}
	es, err := s.Peek(30)
	if err != nil {
		t.Fatal(err)
	}
	if got := captions(t, es); !equalStrings(got, wantCaptions("cam1", 0, 30)) {
		t.Fatalf("peek: got %v", got)
	}
	s.Ack(es)
	if n := s.Len(); n != 70 {
		t.Fatalf("len after ack: %d, want 70", n)
	}
	// Peek without ack, then release: the same records come back.
	es, _ = s.Peek(5)
	s.Release()
	es2, _ := s.Peek(5)
	if !equalStrings(captions(t, es), captions(t, es2)) {
		t.Fatal("released records did not come back first")
	}
	s.Release()
	// A crash: reopen without Close. Acknowledged records stay acknowledged.
	s2 := openTestSpool(t, cfg)
	es, _ = s2.Peek(1000)
	if got := captions(t, es); !equalStrings(got, wantCaptions("cam1", 30, 70)) {
		t.Fatalf("after reopen: got %d records, first %v", len(got), got[:min(3, len(got))])
	}
	s2.Ack(es)
	if _, err := s2.Append(ctx, spoolItems("cam1", false, 100, 1), Block); err != nil {
		t.Fatal(err)
	}
	es, _ = s2.Peek(10)
	if got := captions(t, es); !equalStrings(got, wantCaptions("cam1", 100, 1)) {
		t.Fatalf("after ack of everything and one append: %v", got)
	}
	s2.Ack(es)
	if st := s2.Stats(); st.Records != 0 || st.Bytes != 0 {
		t.Fatalf("empty spool stats: %+v", st)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) > 1 {
		t.Fatalf("acknowledged segments not trimmed: %v", segs)
	}
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	sort.Strings(segs)
	return segs[len(segs)-1]
}

func TestSpoolTornTailIsSkipped(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, MaxBytes: 1 << 20}
	s := openTestSpool(t, cfg)
	if _, err := s.Append(context.Background(), spoolItems("cam1", false, 0, 5), Block); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	seg := lastSegment(t, dir)
	fi, _ := os.Stat(seg)
	if err := os.Truncate(seg, fi.Size()-7); err != nil { // an append cut short
		t.Fatal(err)
	}
	s2 := openTestSpool(t, cfg)
	st := s2.Stats()
	if st.Records != 4 || st.Damaged != 1 {
		t.Fatalf("after a torn tail: %+v, want 4 records and 1 damage", st)
	}
	if _, err := s2.Append(context.Background(), spoolItems("cam1", false, 5, 1), Block); err != nil {
		t.Fatalf("append after a torn tail: %v", err)
	}
	es, _ := s2.Peek(10)
	want := append(wantCaptions("cam1", 0, 4), wantCaptions("cam1", 5, 1)...)
	if got := captions(t, es); !equalStrings(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSpoolGarbageInTheMiddleIsSkipped(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, MaxBytes: 1 << 20}
	s := openTestSpool(t, cfg)
	if _, err := s.Append(context.Background(), spoolItems("cam1", false, 0, 6), Block); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	seg := lastSegment(t, dir)
	data, _ := os.ReadFile(seg)
	frames, _, _ := ParseSegment(data)
	if len(frames) != 6 {
		t.Fatalf("setup: %d frames", len(frames))
	}
	// Scribble over the payload of the third record.
	f3 := frames[2]
	for i := f3.Offset + frameHeaderBytes + 3; i < f3.Offset+frameHeaderBytes+20; i++ {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(seg, data, 0o640); err != nil {
		t.Fatal(err)
	}
	s2 := openTestSpool(t, cfg)
	st := s2.Stats()
	if st.Records != 5 || st.Damaged != 1 {
		t.Fatalf("after garbage: %+v, want 5 records and 1 damage", st)
	}
	es, _ := s2.Peek(10)
	want := append(wantCaptions("cam1", 0, 2), wantCaptions("cam1", 3, 3)...)
	if got := captions(t, es); !equalStrings(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// A file that is not a segment at all is moved aside, never fatal.
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.seg"), []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	_ = s2.Close()
	s3 := openTestSpool(t, cfg)
	if st := s3.Stats(); st.Records != 5 {
		t.Fatalf("a bad segment file changed the records: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000000.seg.bad")); err != nil {
		t.Fatalf("bad segment not moved aside: %v", err)
	}
}

func TestSpoolDamageOnDiskAfterAppendIsSkippedOnRead(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, Config{Dir: dir, MaxBytes: 1 << 20})
	if _, err := s.Append(context.Background(), spoolItems("cam1", false, 0, 3), Block); err != nil {
		t.Fatal(err)
	}
	seg := lastSegment(t, dir)
	data, _ := os.ReadFile(seg)
	frames, _, _ := ParseSegment(data)
	f, _ := os.OpenFile(seg, os.O_RDWR, 0)
	_, _ = f.WriteAt([]byte("XXXX"), frames[1].Offset+frameHeaderBytes+1)
	_ = f.Close()
	es, err := s.Peek(10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{testRecord("cam1", 0).Caption, testRecord("cam1", 2).Caption}
	if got := captions(t, es); !equalStrings(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if st := s.Stats(); st.Damaged != 1 {
		t.Fatalf("damage not counted: %+v", st)
	}
}

func sizeOf(items []Item) int64 {
	var n int64
	for _, it := range items {
		n += int64(frameHeaderBytes + len(it.Payload))
	}
	return n
}

func itemBytes(t *testing.T) int64 {
	return int64(frameHeaderBytes + len(spoolItems("cam1", false, 0, 1)[0].Payload))
}

func TestSpoolFullBlockWaitsForRoom(t *testing.T) {
	per := itemBytes(t)
	s := openTestSpool(t, Config{Dir: t.TempDir(), MaxBytes: per*4 + per/2})
	ctx := context.Background()
	if _, err := s.Append(ctx, spoolItems("cam1", false, 0, 4), Block); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := s.Append(short, spoolItems("cam1", false, 4, 1), Block)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append to a full spool: got %v, want a deadline error", err)
	}
	// A replayer acknowledges two records while a writer waits: it proceeds.
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		_, werr = s.Append(ctx, spoolItems("cam1", false, 4, 2), Block)
	}()
	time.Sleep(30 * time.Millisecond)
	es, _ := s.Peek(2)
	s.Ack(es)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	es, _ = s.Peek(10)
	if got := captions(t, es); !equalStrings(got, wantCaptions("cam1", 2, 4)) {
		t.Fatalf("got %v", got)
	}
	if st := s.Stats(); st.Dropped != 0 {
		t.Fatalf("block policy dropped records: %+v", st)
	}
}

func TestSpoolFullDropOldestDropsLiveOnly(t *testing.T) {
	dropped := map[string]int{}
	// Room for exactly the two file and three live records below.
	max := sizeOf(spoolItems("file", false, 0, 2)) + sizeOf(spoolItems("live", true, 2, 3))
	s := openTestSpool(t, Config{Dir: t.TempDir(), MaxBytes: max, OnDrop: func(src string) { dropped[src]++ }})
	ctx := context.Background()
	// Two file records (never dropped), three live ones.
	if _, err := s.Append(ctx, spoolItems("file", false, 0, 2), Block); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, spoolItems("live", true, 0, 3), DropOldest); err != nil {
		t.Fatal(err)
	}
	n, err := s.Append(ctx, spoolItems("live", true, 3, 2), DropOldest)
	if err != nil || n != 0 {
		t.Fatalf("drop-oldest append: dropped %d new records, err %v", n, err)
	}
	es, _ := s.Peek(10)
	want := append(wantCaptions("file", 0, 2), wantCaptions("live", 2, 3)...)
	if got := captions(t, es); !equalStrings(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	s.Release()
	if dropped["live"] != 2 || dropped["file"] != 0 || s.Stats().Dropped != 2 {
		t.Fatalf("drops per source: %v, stats %+v", dropped, s.Stats())
	}
	// In a spool full of file records, a new live record is itself dropped
	// rather than a file record.
	s2 := openTestSpool(t, Config{Dir: t.TempDir(), MaxBytes: sizeOf(spoolItems("file", false, 0, 2))})
	if _, err := s2.Append(ctx, spoolItems("file", false, 0, 2), Block); err != nil {
		t.Fatal(err)
	}
	n, err = s2.Append(ctx, spoolItems("live", true, 0, 1), DropOldest)
	if err != nil || n != 1 {
		t.Fatalf("live append into a spool full of file records: dropped %d, err %v", n, err)
	}
	if got := captions(t, mustPeek(t, s2, 10)); !equalStrings(got, wantCaptions("file", 0, 2)) {
		t.Fatalf("file records changed: %v", got)
	}
}

func mustPeek(t *testing.T, s *Spool, n int) []Entry {
	t.Helper()
	es, err := s.Peek(n)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestSpoolRejectsBadConfigAndOversizedRecords(t *testing.T) {
	if _, err := Open(Config{}); err == nil {
		t.Fatal("empty dir accepted")
	}
	file := filepath.Join(t.TempDir(), "f")
	_ = os.WriteFile(file, nil, 0o640)
	if _, err := Open(Config{Dir: filepath.Join(file, "sub")}); err == nil {
		t.Fatal("dir under a file accepted")
	}
	s := openTestSpool(t, Config{Dir: t.TempDir()})
	big := Item{SourceID: "x", Payload: make([]byte, MaxRecordBytes+1)}
	if _, err := s.Append(context.Background(), []Item{big}, Block); err == nil {
		t.Fatal("oversized record accepted")
	}
	_ = s.Close()
	if _, err := s.Append(context.Background(), spoolItems("x", false, 0, 1), Block); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// BenchmarkSpoolAppend measures fsync'd appends of 1, 10 and 100-record
// batches.
func BenchmarkSpoolAppend(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			s, err := Open(Config{Dir: b.TempDir(), MaxBytes: 1 << 40})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			items := spoolItems("cam1", false, 0, n)
			b.SetBytes(sizeOf(items))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Append(context.Background(), items, Block); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestSpoolDiskFull fills a real file system (a 256 KiB tmpfs the test mounts; mounting needs root,
// which CI has): the append that meets ENOSPC fails with that error instead of dropping records,
// everything appended before stays readable in order, acknowledging records frees segments so
// appends succeed again, and a restart finds every unacknowledged record, torn tail skipped.
func TestSpoolDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting the tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a 256 KiB tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	cfg := Config{Dir: dir, MaxBytes: 64 << 20, SegmentBytes: 32 << 10} // the byte cap is far above the disk
	s := openTestSpool(t, cfg)
	ctx := context.Background()
	appended := 0
	var full error
	for appended < 100000 {
		if _, err := s.Append(ctx, spoolItems("cam1", false, appended, 10), Block); err != nil {
			full = err
			break
		}
		appended += 10
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("after %d records: want ENOSPC, got %v", appended, full)
	}
	t.Logf("disk full after %d records: %v", appended, full)
	// Records of the failed call may have gone into an earlier segment before the error (the caller
	// retries the call: duplicates, never losses); all must be in order.
	es, err := s.Peek(appended + 10)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(es); n < appended || n >= appended+10 {
		t.Fatalf("readable after ENOSPC: %d records, appended %d", n, appended)
	}
	if got := captions(t, es); !equalStrings(got, wantCaptions("cam1", 0, len(es))) {
		t.Fatal("records after ENOSPC are not the appended ones in order")
	}
	// Deliver half: whole segments go, and appends work again.
	half := len(es) / 2
	s.Ack(es[:half])
	if _, err := s.Append(ctx, spoolItems("cam1", false, 1000000, 10), Block); err != nil {
		t.Fatalf("append after acknowledging %d records: %v", half, err)
	}
	kept := len(es) - half
	// A restart without Close: every unacknowledged record is back, in order, then the new ones.
	s2, err := Open(cfg)
	if err != nil {
		t.Fatalf("reopen after ENOSPC: %v", err)
	}
	defer s2.Close()
	es2, err := s2.Peek(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	want := append(wantCaptions("cam1", half, kept), wantCaptions("cam1", 1000000, 10)...)
	if got := captions(t, es2); !equalStrings(got, want) {
		t.Fatalf("after restart: %d records, want %d (first %v)", len(got), len(want), got[:min(3, len(got))])
	}
}
