package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// --- helpers ------------------------------------------------------------------

// fifoOnce is a table that returns every item exactly once, in insertion
// order, so tests can read back all items.
func fifoOnce(name string) table.Options {
	return table.Options{Name: name, Sampler: sampler.FIFOSpec(), Remover: sampler.FIFOSpec(), MaxTimesSampled: 1}
}

// writerStep returns step i of the test trajectory: a float32 [2] vector, an
// int32 scalar and an int64 [3] counter (delta-encodable).
func writerStep(i int) map[string]Tensor {
	f := float32(i)
	return map[string]Tensor{
		"obs":   mustTensor(FromSlice([]float32{f, f + 0.5}, 2)),
		"act":   Scalar(int32(10 * i)),
		"count": mustTensor(FromSlice([]int64{int64(i), int64(2 * i), int64(1000 + i)}, 3)),
	}
}

func mustTensor(t Tensor, err error) Tensor {
	if err != nil {
		panic(err)
	}
	return t
}

// stacked is steps [start, end) of column col stacked along a new first
// axis, as an item column holds them (squeezed: the single step itself).
func stacked(steps []map[string]Tensor, col string, start, end int, squeeze bool) Tensor {
	first := steps[start][col]
	if squeeze {
		return first
	}
	out := Tensor{DType: first.DType, Shape: append([]int{end - start}, first.Shape...)}
	for i := start; i < end; i++ {
		out.Data = append(out.Data, steps[i][col].Data...)
	}
	return out
}

func appendAll(t testing.TB, w *Writer, steps []map[string]Tensor) {
	t.Helper()
	for _, s := range steps {
		if err := w.Append(s); err != nil {
			t.Fatal(err)
		}
	}
}

func newWriter(t testing.TB, c *Client, opts WriterOptions) *Writer {
	t.Helper()
	w, err := c.NewWriter(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func flush(t testing.TB, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// sampleN reads n samples of table.
func sampleN(t testing.TB, c *Client, tableName string, n int) []Sample {
	t.Helper()
	s, err := c.NewSampler(tableName, WithPrefetch(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make([]Sample, n)
	for i := range out {
		if out[i], err = s.Next(ctx); err != nil {
			t.Fatalf("sample %d of %d: %v", i, n, err)
		}
	}
	return out
}

// wantColumn is the expected content of one item column.
type wantColumn struct {
	name       string
	start, end int
	squeeze    bool
}

func checkSample(t testing.TB, s Sample, steps []map[string]Tensor, want []wantColumn) {
	t.Helper()
	if len(s.Columns) != len(want) {
		t.Fatalf("sample %d has %d columns, want %d", s.Info.Key, len(s.Columns), len(want))
	}
	for i, wc := range want {
		exp := stacked(steps, wc.name, wc.start, wc.end, wc.squeeze)
		if s.Names[i] != wc.name || !s.Columns[i].Equal(exp) {
			t.Errorf("item column %d: got %s %s%v %x, want %s %s%v %x", i,
				s.Names[i], s.Columns[i].DType, s.Columns[i].Shape, s.Columns[i].Data,
				wc.name, exp.DType, exp.Shape, exp.Data)
		}
	}
}

// --- tests ----------------------------------------------------------------------

func TestWriterRoundTrip(t *testing.T) {
	ts := startServer(t, ServerOptions{Tables: []table.Options{fifoOnce("a"), fifoOnce("b")}})
	c := dial(t, ts.addr)
	ctx := context.Background()

	for _, opts := range []WriterOptions{
		{},
		{ChunkLength: 3},
		{ChunkLength: 4, DeltaEncode: true, Compression: CompressionBest},
		{ChunkLength: 2, Compression: CompressionNone, ItemsPerMessage: 1},
		{ChunkLength: 5, Compression: CompressionBalanced, HistoryLength: 9},
	} {
		t.Run(fmt.Sprintf("chunk=%d,delta=%v,%s", opts.ChunkLength, opts.DeltaEncode, opts.Compression), func(t *testing.T) {
			w := newWriter(t, c, opts)
			steps := make([]map[string]Tensor, 10)
			for i := range steps {
				steps[i] = writerStep(i)
			}
			appendAll(t, w, steps[:6])
			obs, act, count := w.History("obs"), w.History("act"), w.History("count")
			if obs.Len() != 6 {
				t.Fatalf("history length %d, want 6", obs.Len())
			}
			type itemSpec struct {
				table string
				refs  []ColumnRef
				want  []wantColumn
			}
			var items []itemSpec
			add := func(tb string, refs []ColumnRef, want ...wantColumn) {
				if err := w.CreateItem(ctx, tb, 1, refs...); err != nil {
					t.Fatal(err)
				}
				items = append(items, itemSpec{tb, refs, want})
			}
			// Several steps across chunk boundaries, several columns.
			add("a", []ColumnRef{obs.Slice(0, 5), act.Slice(1, 6)}, wantColumn{"obs", 0, 5, false}, wantColumn{"act", 1, 6, false})
			// The same steps into another table; the last step's chunk is
			// still open for long chunks and must be encoded early.
			add("b", []ColumnRef{count.Last(4), obs.Step(5)}, wantColumn{"count", 2, 6, false}, wantColumn{"obs", 5, 6, true})
			appendAll(t, w, steps[6:])
			add("a", []ColumnRef{act.Step(9), count.Slice(3, 10), obs.Last(1)},
				wantColumn{"act", 9, 10, true}, wantColumn{"count", 3, 10, false}, wantColumn{"obs", 9, 10, false})
			add("b", []ColumnRef{obs.Slice(7, 9), obs.Slice(7, 9)}, wantColumn{"obs", 7, 9, false}, wantColumn{"obs", 7, 9, false})
			flush(t, w)
			if n := w.InFlight(); n != 0 {
				t.Fatalf("%d items in flight after Flush", n)
			}

			for _, tb := range []string{"a", "b"} {
				var want []itemSpec
				for _, it := range items {
					if it.table == tb {
						want = append(want, it)
					}
				}
				got := sampleN(t, c, tb, len(want))
				for i, s := range got {
					checkSample(t, s, steps, want[i].want)
				}
				if size := ts.srv.Table(tb).Size(); size != 0 {
					t.Errorf("table %s has %d items left", tb, size)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWriterChunking(t *testing.T) {
	ts := startServer(t, oneTable(fifoOnce("t")))
	c := dial(t, ts.addr)
	ctx := context.Background()
	w := newWriter(t, c, WriterOptions{ChunkLength: 4})
	var steps []map[string]Tensor
	for i := range 6 {
		steps = append(steps, writerStep(i))
	}
	appendAll(t, w, steps[:5])
	// Steps 0-3 form a full chunk; step 4 is in an open chunk, which the
	// item forces out as a chunk of one step.
	if err := w.CreateItem(ctx, "t", 1, w.History("obs").Slice(2, 5)); err != nil {
		t.Fatal(err)
	}
	appendAll(t, w, steps[5:])
	if err := w.CreateItem(ctx, "t", 1, w.History("obs").Last(1)); err != nil {
		t.Fatal(err)
	}
	flush(t, w)
	got, err := ts.srv.Table("t").Sample(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	byLen := map[int]table.Sampled{}
	for _, s := range got {
		n := 0
		for _, sl := range s.Trajectory[0].Slices {
			n += int(sl.Length)
		}
		byLen[n] = s
	}
	s3 := byLen[3]
	if len(s3.Chunks) != 2 || s3.Chunks[0].Start != 0 || s3.Chunks[0].Length != 4 || s3.Chunks[1].Start != 4 || s3.Chunks[1].Length != 1 {
		t.Errorf("3-step item chunks: %+v", s3.Chunks)
	}
	if sl := s3.Trajectory[0].Slices; len(sl) != 2 || sl[0].Offset != 2 || sl[0].Length != 2 || sl[1].Offset != 0 || sl[1].Length != 1 {
		t.Errorf("3-step item slices: %+v", sl)
	}
	c0 := s3.Chunks[0]
	if len(c0.Columns) != 1 || c0.Columns[0].Name != "obs" || c0.Columns[0].DType != Float32 || !slices.Equal(c0.Columns[0].Shape, []int{2}) {
		t.Errorf("chunk columns %+v", c0.Columns)
	}
	s1 := byLen[1]
	if len(s1.Chunks) != 1 || s1.Chunks[0].Start != 5 || s1.Chunks[0].Length != 1 {
		t.Errorf("1-step item chunks: %+v", s1.Chunks)
	}
	if s1.Chunks[0].EpisodeID != w.EpisodeID() || c0.EpisodeID != w.EpisodeID() {
		t.Errorf("chunk episode ids %d, %d, writer's %d", c0.EpisodeID, s1.Chunks[0].EpisodeID, w.EpisodeID())
	}
}

func TestWriterSignatureTable(t *testing.T) {
	sig := &table.Signature{Columns: []table.ColumnSpec{{Name: "obs", DType: Float32, Shape: []int{2}}, {Name: "act", DType: Int32, Shape: []int{}}}}
	ts := startServer(t, oneTable(table.Options{Name: "sig", Signature: sig, Sampler: sampler.FIFOSpec(), MaxTimesSampled: 1}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	w := newWriter(t, c, WriterOptions{ChunkLength: 2})
	steps := []map[string]Tensor{writerStep(0), writerStep(1), writerStep(2)}
	appendAll(t, w, steps)
	if err := w.CreateItem(ctx, "sig", 1, w.History("obs").Last(2), w.History("act").Step(2)); err != nil {
		t.Fatal(err)
	}
	flush(t, w)
	checkSample(t, sampleN(t, c, "sig", 1)[0], steps, []wantColumn{{"obs", 1, 3, false}, {"act", 2, 3, true}})

	// A column of the wrong dtype is refused by the server: the error is
	// sticky.
	if err := w.CreateItem(ctx, "sig", 1, w.History("count").Last(2), w.History("act").Step(2)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Flush = %v, want ErrInvalidArgument", err)
	}
	if err := w.CreateItem(ctx, "sig", 1, w.History("obs").Last(1), w.History("act").Last(1)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("CreateItem after failure = %v, want the sticky error", err)
	}
	if err := w.Close(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Close = %v, want the sticky error", err)
	}
}

func TestWriterUnknownTableIsSticky(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{Name: "t"}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	w := newWriter(t, c, WriterOptions{})
	appendAll(t, w, []map[string]Tensor{writerStep(0)})
	if err := w.CreateItem(ctx, "nope", 1, w.History("obs").Last(1)); err != nil {
		t.Fatal(err) // queued; the server has not answered yet
	}
	if err := w.Flush(ctx); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("Flush = %v, want ErrTableNotFound", err)
	}
	for name, err := range map[string]error{
		"CreateItem": w.CreateItem(ctx, "t", 1, w.History("obs").Last(1)),
		"Append":     w.Append(writerStep(1)),
		"Flush":      w.Flush(ctx),
		"EndEpisode": w.EndEpisode(ctx, true),
		"Close":      w.Close(),
	} {
		if !errors.Is(err, ErrTableNotFound) {
			t.Errorf("%s = %v, want ErrTableNotFound", name, err)
		}
	}
	if err := w.Append(writerStep(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}

func TestWriterLocalValidation(t *testing.T) {
	ts := startServer(t, oneTable(fifoOnce("t")))
	c := dial(t, ts.addr)
	ctx := context.Background()
	if _, err := c.NewWriter(WriterOptions{ChunkLength: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative chunk length: %v", err)
	}
	if _, err := c.NewWriter(WriterOptions{Compression: 99}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad compression: %v", err)
	}
	w := newWriter(t, c, WriterOptions{HistoryLength: 4, ChunkLength: 3})
	other := newWriter(t, c, WriterOptions{})
	steps := make([]map[string]Tensor, 6)
	for i := range steps {
		steps[i] = writerStep(i)
	}
	appendAll(t, w, steps)
	appendAll(t, other, steps[:1])
	obs := w.History("obs")

	for name, err := range map[string]error{
		"NaN":           w.CreateItem(ctx, "t", math.NaN(), obs.Last(1)),
		"+Inf":          w.CreateItem(ctx, "t", math.Inf(1), obs.Last(1)),
		"-Inf":          w.CreateItem(ctx, "t", math.Inf(-1), obs.Last(1)),
		"negative":      w.CreateItem(ctx, "t", -0.5, obs.Last(1)),
		"no table":      w.CreateItem(ctx, "", 1, obs.Last(1)),
		"no columns":    w.CreateItem(ctx, "t", 1),
		"other writer":  w.CreateItem(ctx, "t", 1, other.History("obs").Last(1)),
		"empty slice":   w.CreateItem(ctx, "t", 1, obs.Slice(3, 3)),
		"past the end":  w.CreateItem(ctx, "t", 1, obs.Slice(4, 7)),
		"negative step": w.CreateItem(ctx, "t", 1, obs.Step(-1)),
		"too long":      w.CreateItem(ctx, "t", 1, obs.Last(7)),
		"out of window": w.CreateItem(ctx, "t", 1, obs.Slice(1, 3)), // history keeps steps 2..5
		"no column":     w.CreateItem(ctx, "t", 1, w.History("missing").Last(1)),
		"bad dtype":     w.Append(map[string]Tensor{"obs": Scalar(int32(1))}),
		"bad shape":     w.Append(map[string]Tensor{"obs": mustTensor(FromSlice([]float32{1, 2, 3}, 3))}),
		"bad tensor":    w.Append(map[string]Tensor{"x": {DType: Float32, Shape: []int{2}, Data: []byte{1}}}),
		"empty name":    w.Append(map[string]Tensor{"": Scalar(int32(1))}),
	} {
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if got := obs.Len(); got != 6 {
		t.Errorf("failed appends changed the history: length %d", got)
	}
	// Zero is a valid priority, the oldest step of the window is usable and
	// the writer still works after the refusals.
	if err := w.CreateItem(ctx, "t", 0, obs.Slice(2, 6)); err != nil {
		t.Fatal(err)
	}
	flush(t, w)
	checkSample(t, sampleN(t, c, "t", 1)[0], steps, []wantColumn{{"obs", 2, 6, false}})
}

func TestWriterPartialSteps(t *testing.T) {
	ts := startServer(t, oneTable(fifoOnce("t")))
	c := dial(t, ts.addr)
	ctx := context.Background()
	w := newWriter(t, c, WriterOptions{ChunkLength: 3})

	// "x" has a value at every step, "y" only at even steps, and step 4 is
	// written in two calls.
	steps := make([]map[string]Tensor, 6)
	for i := range steps {
		steps[i] = map[string]Tensor{"x": Scalar(int64(i))}
		if i%2 == 0 {
			steps[i]["y"] = mustTensor(FromSlice([]uint8{uint8(i), uint8(i + 1)}, 2))
		}
	}
	appendAll(t, w, steps[:4])
	if err := w.AppendPartial(map[string]Tensor{"y": steps[4]["y"]}); err != nil {
		t.Fatal(err)
	}
	if n, m := w.History("y").Len(), w.History("x").Len(); n != 5 || m != 4 {
		t.Fatalf("history lengths during a partial step: y %d, x %d; want 5, 4", n, m)
	}
	if err := w.AppendPartial(map[string]Tensor{"y": steps[4]["y"]}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("second value in a step: %v", err)
	}
	// The partial step can be referenced before it is completed.
	if err := w.CreateItem(ctx, "t", 1, w.History("y").Step(4), w.History("x").Step(3)); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(map[string]Tensor{"x": steps[4]["x"]}); err != nil {
		t.Fatal(err)
	}
	appendAll(t, w, steps[5:])

	// "y" has no value at odd steps.
	if err := w.CreateItem(ctx, "t", 1, w.History("y").Slice(2, 5)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("slice over a missing value: %v", err)
	}
	if err := w.CreateItem(ctx, "t", 1, w.History("y").Step(5)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("missing value: %v", err)
	}
	if err := w.CreateItem(ctx, "t", 1, w.History("x").Slice(0, 6), w.History("y").Step(2)); err != nil {
		t.Fatal(err)
	}
	flush(t, w)
	got := sampleN(t, c, "t", 2)
	checkSample(t, got[0], steps, []wantColumn{{"y", 4, 5, true}, {"x", 3, 4, true}})
	checkSample(t, got[1], steps, []wantColumn{{"x", 0, 6, false}, {"y", 2, 3, true}})
}

func TestWriterEndEpisode(t *testing.T) {
	ts := startServer(t, oneTable(fifoOnce("t")))
	c := dial(t, ts.addr)
	ctx := context.Background()
	w := newWriter(t, c, WriterOptions{ChunkLength: 4})
	step := func(ep, i int) map[string]Tensor {
		return map[string]Tensor{"ep": Scalar(int32(ep)), "i": Scalar(int32(i))}
	}
	ep1 := w.EpisodeID()
	for i := range 3 {
		if err := w.Append(step(1, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CreateItem(ctx, "t", 1, w.History("i").Last(2)); err != nil {
		t.Fatal(err)
	}
	stale := w.History("i").Last(1)
	if err := w.EndEpisode(ctx, true); err != nil {
		t.Fatal(err)
	}
	ep2 := w.EpisodeID()
	if ep2 == ep1 || w.EpisodeStep() != 0 || w.History("i").Len() != 0 {
		t.Fatalf("after EndEpisode: episode %d (was %d), step %d, history %d", ep2, ep1, w.EpisodeStep(), w.History("i").Len())
	}
	if err := w.CreateItem(ctx, "t", 1, stale); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("reference into a cleared history: %v", err)
	}
	for i := range 2 {
		if err := w.Append(step(2, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CreateItem(ctx, "t", 1, w.History("i").Last(2)); err != nil {
		t.Fatal(err)
	}
	// Without clearing, the next episode's items may reach back.
	if err := w.EndEpisode(ctx, false); err != nil {
		t.Fatal(err)
	}
	ep3 := w.EpisodeID()
	if err := w.Append(step(3, 0)); err != nil {
		t.Fatal(err)
	}
	if w.EpisodeStep() != 1 || w.History("i").Len() != 3 {
		t.Fatalf("episode step %d, history %d; want 1, 3", w.EpisodeStep(), w.History("i").Len())
	}
	if err := w.CreateItem(ctx, "t", 1, w.History("i").Last(3), w.History("ep").Last(3)); err != nil {
		t.Fatal(err)
	}
	flush(t, w)

	want := []struct {
		episodes []uint64
		steps    []int32 // episode step index of each step of the item
	}{
		{[]uint64{ep1, ep1}, []int32{1, 2}},
		{[]uint64{ep2, ep2}, []int32{0, 1}},
		{[]uint64{ep2, ep2, ep3}, []int32{0, 1, 0}},
	}
	tb := ts.srv.Table("t")
	if n := tb.Info().NumEpisodes; n != 3 {
		t.Errorf("table has %d episodes, want 3", n)
	}
	for k, wt := range want {
		got, err := tb.Sample(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		s := got[0]
		byKey := map[uint64]*table.Chunk{}
		for _, ch := range s.Chunks {
			byKey[ch.Key] = ch
		}
		var eps []uint64
		var idx []int32
		for _, sl := range s.Trajectory[0].Slices {
			ch := byKey[sl.ChunkKey]
			for j := range sl.Length {
				eps = append(eps, ch.EpisodeID)
				idx = append(idx, int32(ch.Start)+sl.Offset+j)
			}
		}
		if !slices.Equal(eps, wt.episodes) || !slices.Equal(idx, wt.steps) {
			t.Errorf("item %d: episodes %v steps %v, want %v %v", k, eps, idx, wt.episodes, wt.steps)
		}
		cols, _, err := assemble(&s, decodedChunks{})
		if err != nil {
			t.Fatal(err)
		}
		vals, _ := ToSlice[int32](cols[0])
		if !slices.Equal(vals, wt.steps) {
			t.Errorf("item %d: step values %v, want %v", k, vals, wt.steps)
		}
	}
}

func TestWriterFlushTimeoutAndBackPressure(t *testing.T) {
	q, err := table.QueueOptions("q", 2)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, oneTable(q))
	c := dial(t, ts.addr)
	ctx := context.Background()
	w := newWriter(t, c, WriterOptions{MaxInFlightItems: 3})
	id := func(i int) map[string]Tensor { return map[string]Tensor{"id": Scalar(int64(i))} }
	create := func(ctx context.Context, i int) error {
		return w.CreateItem(ctx, "q", 1, w.History("id").Step(i))
	}
	// Nobody samples: the queue takes 2 items, the server blocks on the 3rd,
	// and the writer holds 3 unacknowledged items (the 3rd to 5th). (The
	// server acknowledges a request's items together, so the first two are
	// flushed on their own.)
	for i := range 5 {
		if err := w.Append(id(i)); err != nil {
			t.Fatal(err)
		}
		if err := create(ctx, i); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			flush(t, w)
		}
	}
	if err := w.Append(id(5)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return ts.srv.Table("q").Size() == 2 && ts.srv.Table("q").Info().InsertsWaiting == 1 })
	if n := w.InFlight(); n != 3 {
		t.Fatalf("%d items in flight, want 3", n)
	}

	// Flush gives up at its deadline; the items stay in flight.
	fctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err = w.Flush(fctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush = %v, want DeadlineExceeded", err)
	}
	// CreateItem blocks at MaxInFlightItems until its deadline.
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err = create(cctx, 5)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("CreateItem = %v after %v, want DeadlineExceeded after 100ms", err, time.Since(start))
	}
	if n := w.InFlight(); n != 3 {
		t.Fatalf("%d items in flight, want 3", n)
	}

	// A blocked CreateItem proceeds once the learner makes room.
	created := make(chan error, 1)
	go func() { created <- create(ctx, 5) }()
	select {
	case err := <-created:
		t.Fatalf("CreateItem returned %v while the writer was full", err)
	case <-time.After(50 * time.Millisecond):
	}
	got := sampleN(t, c, "q", 6)
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		v, _ := ToSlice[int64](s.Columns[0])
		if len(v) != 1 || v[0] != int64(i) {
			t.Errorf("sample %d holds %v", i, v)
		}
	}
	flush(t, w)
}

func TestWriterCloseUnblocksCreateItem(t *testing.T) {
	q, _ := table.QueueOptions("q", 1)
	ts := startServer(t, oneTable(q))
	c := dial(t, ts.addr)
	w, err := c.NewWriter(WriterOptions{MaxInFlightItems: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		if err := w.Append(map[string]Tensor{"x": Scalar(int32(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CreateItem(ctx, "q", 1, w.History("x").Step(0)); err != nil {
		t.Fatal(err)
	}
	if err := w.CreateItem(ctx, "q", 1, w.History("x").Step(1)); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() { blocked <- w.CreateItem(ctx, "q", 1, w.History("x").Step(2)) }()
	time.Sleep(20 * time.Millisecond)
	if err := w.Close(); err == nil {
		t.Error("Close with an unacknowledged item returned nil")
	}
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked CreateItem = %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// TestWriterServerRestart stops the server, creates items while it is
// down (some using steps whose chunks the old server had), and starts a new
// server on the same address: every item created after the last
// acknowledgement arrives exactly once, with its data.
func TestWriterServerRestart(t *testing.T) {
	opts := oneTable(fifoOnce("t"))
	ts1 := startServer(t, opts)
	c := dial(t, ts1.addr)
	ctx := context.Background()
	w := newWriter(t, c, WriterOptions{ChunkLength: 3, HistoryLength: 20})

	steps := make([]map[string]Tensor, 12)
	for i := range steps {
		steps[i] = writerStep(i)
	}
	appendAll(t, w, steps[:8])
	for i := range 5 {
		if err := w.CreateItem(ctx, "t", 1, w.History("obs").Slice(i, i+3)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, w)
	if n := ts1.srv.Table("t").Size(); n != 5 {
		t.Fatalf("first server has %d items", n)
	}
	ts1.srv.Stop()

	var want [][]wantColumn
	for k := range 7 {
		if k < 4 {
			if err := w.Append(steps[8+k]); err != nil {
				t.Fatal(err)
			}
		}
		l := w.History("obs").Len()
		start := l - 6 + k%3 // reaches back into chunks the first server had
		if err := w.CreateItem(ctx, "t", float64(k+5), w.History("obs").Slice(start, l), w.History("act").Step(start)); err != nil {
			t.Fatal(err)
		}
		want = append(want, []wantColumn{{"obs", start, l, false}, {"act", start, start + 1, true}})
	}
	time.Sleep(30 * time.Millisecond) // let the writer fail to reconnect a few times
	if n := w.InFlight(); n != 7 {
		t.Fatalf("%d items in flight while the server is down, want 7", n)
	}

	var lis net.Listener
	waitUntil(t, func() bool {
		var err error
		lis, err = net.Listen("tcp", ts1.addr)
		return err == nil
	})
	ts2 := serveOn(t, lis, opts)
	flush(t, w)
	info := ts2.srv.Table("t").Info()
	if info.Size != 7 || info.Limiter.Inserts != 7 {
		t.Fatalf("new server: %d items, %d inserts; want 7, 7", info.Size, info.Limiter.Inserts)
	}
	for i, s := range sampleN(t, c, "t", 7) {
		checkSample(t, s, steps, want[i])
		if s.Info.Priority != float64(i+5) {
			t.Errorf("sample %d has priority %v", i, s.Info.Priority)
		}
	}
	w.mu.Lock()
	streams := w.mu.streams
	w.mu.Unlock()
	if streams < 2 {
		t.Errorf("writer opened %d streams", streams)
	}
}

// cutProxy forwards TCP connections to a backend and can cut them all.
type cutProxy struct {
	lis     net.Listener
	backend string
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newCutProxy(t testing.TB, backend string) *cutProxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{lis: lis, backend: backend}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.backend)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(out, in); out.Close() }()
		go func() { defer p.wg.Done(); io.Copy(in, out); in.Close() }()
	}
}

// cut closes every open connection.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) close() {
	p.lis.Close()
	p.cut()
	p.wg.Wait()
}

// TestWriterConnectionCuts cuts the connection repeatedly while items
// stream: items whose acknowledgement was lost are resent and the server,
// seeing their keys again, does not duplicate them.
func TestWriterConnectionCuts(t *testing.T) {
	ts := startServer(t, oneTable(fifoOnce("t")))
	p := newCutProxy(t, ts.addr)
	c := dial(t, p.lis.Addr().String())
	ctx := context.Background()
	w := newWriter(t, c, WriterOptions{ChunkLength: 2, HistoryLength: 8, MaxInFlightItems: 64, ItemsPerMessage: 8})

	const n = 600
	// pad makes chunks large enough to be encoded into recycled buffers,
	// which must survive resends.
	pad := func(i int) Tensor { return mustTensor(FromSlice(bytes.Repeat([]byte{byte(i)}, 12<<10))) }
	for i := range n {
		if err := w.Append(map[string]Tensor{"id": Scalar(int64(i)), "obs": writerStep(i)["obs"], "pad": pad(i)}); err != nil {
			t.Fatal(err)
		}
		refs := []ColumnRef{w.History("id").Step(i), w.History("obs").Last(min(i+1, 3)), w.History("pad").Step(i)}
		if err := w.CreateItem(ctx, "t", 1, refs...); err != nil {
			t.Fatal(err)
		}
		if i%100 == 50 {
			p.cut()
		}
	}
	flush(t, w)
	info := ts.srv.Table("t").Info()
	if info.Size != n || info.Limiter.Inserts != n {
		t.Fatalf("server has %d items after %d inserts, want %d", info.Size, info.Limiter.Inserts, n)
	}
	seen := make([]bool, n)
	for _, s := range sampleN(t, c, "t", n) {
		v, _ := ToSlice[int64](s.Columns[0])
		i := int(v[0])
		if seen[i] {
			t.Fatalf("item %d twice", i)
		}
		seen[i] = true
		obs, _ := ToSlice[float32](s.Columns[1])
		l := min(i+1, 3)
		if len(obs) != 2*l || obs[2*l-2] != float32(i) {
			t.Errorf("item %d: obs %v", i, obs)
		}
		if !s.Columns[2].Equal(pad(i)) {
			t.Errorf("item %d: pad column differs", i)
		}
	}
	w.mu.Lock()
	streams := w.mu.streams
	w.mu.Unlock()
	if streams < 2 {
		t.Errorf("writer opened %d streams; the cuts did not take", streams)
	}
}

// TestWriterChunkRefCounts checks that the chunks of a writer are held on
// the server only by live items and, bounded by the history window, by the
// writer's stream; and that the writer's own state stays bounded.
func TestWriterChunkRefCounts(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{Name: "t", RateLimiter: ratelimit.Must(ratelimit.MinSize(1))}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	store := ts.srv.Chunks()
	base := store.Len()
	const chunkLen, history = 2, 6
	w, err := c.NewWriter(WriterOptions{ChunkLength: chunkLen, HistoryLength: history, ItemsPerMessage: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		s := writerStep(i)
		delete(s, "count")
		if err := w.Append(s); err != nil {
			t.Fatal(err)
		}
		if i >= 4 {
			if err := w.CreateItem(ctx, "t", 1, w.History("obs").Last(5), w.History("act").Last(2)); err != nil {
				t.Fatal(err)
			}
		}
		w.mu.Lock()
		for name, col := range w.mu.cols {
			// Items force chunks out early, so a chunk may hold one step.
			if len(col.chunks) > history {
				t.Fatalf("step %d: column %s holds %d chunks", i, name, len(col.chunks))
			}
		}
		if n := len(onServerChunks(w)); n > 2*history+2*len(w.mu.queue) {
			t.Fatalf("step %d: %d chunks mirrored on the server", i, n)
		}
		w.mu.Unlock()
	}
	flush(t, w)
	w.mu.Lock()
	if len(w.mu.queue) != 0 || len(w.mu.pending) != 0 {
		t.Errorf("after Flush: queue %d, pending %d", len(w.mu.queue), len(w.mu.pending))
	}
	// The stream keeps only the sent chunks of the history window.
	window := 0
	for c := range onServerChunks(w) {
		if !c.inWindow {
			t.Errorf("chunk %d kept on the server outside the window", c.key)
		}
		window++
	}
	w.mu.Unlock()
	if window > 2*history {
		t.Errorf("%d chunks kept on the server", window)
	}
	if store.Len() <= base {
		t.Fatalf("no chunks stored")
	}
	// Deleting the items leaves only what the stream keeps.
	if err := c.Reset(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if got := store.Len() - base; got != int64(window) {
		t.Errorf("after deleting all items %d chunks remain, want the %d the stream keeps", got, window)
	}
	// Closing the writer releases those too.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return store.Len() == base })
}

// onServerChunks returns the chunks w's mirror says the server holds for
// its stream. Every such chunk is in its column's window, used by a queued
// item, or waiting to be released. w.mu must be held.
func onServerChunks(w *Writer) map[*wchunk]bool {
	held := map[*wchunk]bool{}
	add := func(cs []*wchunk) {
		for _, c := range cs {
			if w.onServerLocked(c) {
				held[c] = true
			}
		}
	}
	for _, col := range w.mu.cols {
		add(col.chunks)
	}
	for _, it := range w.mu.queue {
		add(it.chunks)
	}
	add(w.mu.releasable)
	return held
}

// ExampleWriter writes a short episode and reads its items back.
func ExampleWriter() {
	srv, err := NewServer(ServerOptions{
		Tables: []table.Options{{Name: "queue", Sampler: sampler.FIFOSpec(), MaxTimesSampled: 1}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	ctx := context.Background()
	client, err := Dial(ctx, lis.Addr().String())
	if err != nil {
		panic(err)
	}
	defer client.Close()

	w, err := client.NewWriter(WriterOptions{ChunkLength: 2})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	for i := range 4 {
		obs, _ := FromSlice([]float32{float32(i), float32(-i)}, 2)
		if err := w.Append(map[string]Tensor{"obs": obs, "reward": Scalar(float32(i) / 10)}); err != nil {
			panic(err)
		}
		// Items: the last two observations and the reward of the last step.
		if h := w.History("obs"); h.Len() >= 2 {
			if err := w.CreateItem(ctx, "queue", 1, h.Last(2), w.History("reward").Step(i)); err != nil {
				panic(err)
			}
		}
	}
	if err := w.EndEpisode(ctx, true); err != nil {
		panic(err)
	}

	s, err := client.NewSampler("queue", WithMaxSamples(3))
	if err != nil {
		panic(err)
	}
	defer s.Close()
	for {
		smp, err := s.Next(ctx)
		if err != nil {
			fmt.Println(err)
			break
		}
		obs, _ := ToSlice[float32](smp.Columns[0])
		rew, _ := ToSlice[float32](smp.Columns[1])
		fmt.Println(smp.Names, smp.Columns[0].Shape, obs, smp.Columns[1].Shape, rew)
	}
	// Output:
	// [obs reward] [2 2] [0 0 1 -1] [] [0.1]
	// [obs reward] [2 2] [1 -1 2 -2] [] [0.2]
	// [obs reward] [2 2] [2 -2 3 -3] [] [0.3]
	// EOF
}

// TestWriterRecyclesLargeChunkBuffers: large chunks are encoded into
// recycled buffers; a buffer is reused only once no item still to be
// acknowledged uses its chunk and gRPC has written it, so every item arrives
// intact however much buffers are reused.
func TestWriterRecyclesLargeChunkBuffers(t *testing.T) {
	ts := startServer(t, ServerOptions{Tables: []table.Options{fifoOnce("t")}})
	c := dial(t, ts.addr)
	ctx := context.Background()
	const items, size, history = 200, 40 << 10, 3
	w := newWriter(t, c, WriterOptions{ChunkLength: 1, HistoryLength: history, ItemsPerMessage: 4,
		MaxInFlightItems: 8, Compression: CompressionNone})
	step := func(i int) map[string]Tensor {
		v := make([]uint8, size)
		for j := range v {
			v[j] = uint8(i + j/1024)
		}
		return map[string]Tensor{"obs": mustTensor(FromSlice(v, size))}
	}
	var steps []map[string]Tensor
	for i := range items {
		steps = append(steps, step(i))
		appendAll(t, w, steps[i:])
		if i >= 1 {
			if err := w.CreateItem(ctx, "t", 1, w.History("obs").Last(2)); err != nil {
				t.Fatal(err)
			}
		}
		w.mu.Lock()
		for _, ch := range w.mu.cols["obs"].chunks {
			if ch.buf == nil && ch.users > 0 {
				t.Fatalf("step %d: chunk %d in use has no buffer: large chunks are not pooled", i, ch.key)
			}
		}
		w.mu.Unlock()
	}
	flush(t, w)
	// Only the history window still holds buffers, each held by the writer
	// alone once gRPC is done (the acks prove the messages were written).
	w.mu.Lock()
	held := 0
	for _, ch := range w.mu.cols["obs"].chunks {
		if ch.buf != nil {
			held++
			if h := ch.buf.holds.Load(); h < 1 {
				t.Errorf("chunk %d in the window: buffer holds %d", ch.key, h)
			}
		}
	}
	w.mu.Unlock()
	if held == 0 || held > history {
		t.Errorf("%d buffers held after Flush, want 1..%d (the window)", held, history)
	}
	got := sampleN(t, c, "t", items-1)
	bad := 0
	for i, s := range got {
		// Not checkSample: a failure would print megabytes.
		if len(s.Columns) != 1 || !s.Columns[0].Equal(stacked(steps, "obs", i, i+2, false)) {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d items arrived with the wrong content", bad, len(got))
	}
}
