package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/recall-rl/recall/replay/internal/wire"
)

// Sample is one sampled item with its decoded columns.
type Sample struct {
	Info SampleInfo
	// Columns holds the item's trajectory columns in order, each with the
	// step axis first (dropped for squeezed columns). The data may share
	// memory with other samples of the same chunk, or of the same response
	// from the server (up to ServerOptions.SampleBatchBytes, which a
	// sample kept alive keeps too): do not modify it. It is not
	// necessarily aligned to its element size.
	Columns []Tensor
	// Names holds each column's name as recorded in its chunk.
	Names []string
}

// Column returns the column called name.
func (s *Sample) Column(name string) (Tensor, bool) {
	for i, n := range s.Names {
		if n == name {
			return s.Columns[i], true
		}
	}
	return Tensor{}, false
}

// Batch is several samples with each column stacked along a new leading
// axis.
type Batch struct {
	Infos   []SampleInfo
	Columns []Tensor
	Names   []string
}

// SamplerOption configures a Sampler.
type SamplerOption interface{ applySampler(*samplerOptions) }

type samplerOptionFunc func(*samplerOptions)

func (f samplerOptionFunc) applySampler(o *samplerOptions) { f(o) }

type samplerOptions struct {
	prefetch   int
	workers    int
	timeout    time.Duration
	maxSamples int64
}

// WithPrefetch bounds the samples each worker may have requested but not
// yet handed to Next (the credit granted to the server). Default 64.
func WithPrefetch(n int) SamplerOption {
	return samplerOptionFunc(func(o *samplerOptions) { o.prefetch = n })
}

// WithWorkers sets the number of parallel sample streams. Default 1; use 1
// to keep a FIFO table's order.
func WithWorkers(n int) SamplerOption {
	return samplerOptionFunc(func(o *samplerOptions) { o.workers = n })
}

// WithRateLimiterTimeout ends sampling with ErrRateLimiterTimeout when the
// server's rate limiter blocks a sample for longer than d. Default: wait
// forever.
func WithRateLimiterTimeout(d time.Duration) SamplerOption {
	return samplerOptionFunc(func(o *samplerOptions) { o.timeout = d })
}

// WithMaxSamples makes Next return io.EOF after n samples.
func WithMaxSamples(n int64) SamplerOption {
	return samplerOptionFunc(func(o *samplerOptions) { o.maxSamples = n })
}

// Sampler streams samples of one table. Next and NextBatch may be called
// from one goroutine at a time; Close from any.
type Sampler struct {
	c     *Client
	table string
	opts  samplerOptions

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// out carries the workers' samples, a response's worth at a time.
	out    chan sampleResult
	closed atomic.Bool

	// pending holds the rest of the batch Next is handing out, from
	// worker pendingWorker (only Next and NextBatch touch them).
	pending       []Sample
	pendingWorker int
	// queued counts samples received but not yet handed to Next: in out
	// and in pending.
	queued atomic.Int64

	delivered atomic.Int64
	// budget is how many more samples may be requested from the server
	// (granted as credit); negative means unlimited. With WithMaxSamples
	// it starts at the maximum, so no sample is taken from the table that
	// Next would not return.
	budget  atomic.Int64
	active  atomic.Int32 // workers whose streams have not ended cleanly
	workers []*sampleWorker

	errMu  sync.Mutex
	err    error       // sticky terminal error
	failed atomic.Bool // err is set
}

// sampleResult is a batch of samples from one worker, or its error.
type sampleResult struct {
	batch  []Sample
	worker int
	err    error
}

// NewSampler starts streaming samples of table. Close it when done.
func (c *Client) NewSampler(table string, opts ...SamplerOption) (*Sampler, error) {
	o := samplerOptions{prefetch: 64, workers: 1}
	for _, opt := range opts {
		opt.applySampler(&o)
	}
	if table == "" {
		return nil, fmt.Errorf("%w: sampler needs a table name", ErrInvalidArgument)
	}
	if o.prefetch < 1 || o.workers < 1 || o.timeout < 0 || o.maxSamples < 0 {
		return nil, fmt.Errorf("%w: sampler options: prefetch %d and workers %d must be >= 1, timeout and max samples >= 0", ErrInvalidArgument, o.prefetch, o.workers)
	}
	s := &Sampler{c: c, table: table, opts: o, out: make(chan sampleResult, o.prefetch*o.workers+o.workers)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.budget.Store(-1)
	if o.maxSamples > 0 {
		s.budget.Store(o.maxSamples)
	}
	s.active.Store(int32(o.workers))
	for i := 0; i < o.workers; i++ {
		w := &sampleWorker{s: s, id: i, owed: newCreditCounter(int64(o.prefetch) / 4)}
		s.workers = append(s.workers, w)
		s.wg.Add(1)
		go w.run()
	}
	return s, nil
}

// Next returns the next sample. It returns io.EOF after WithMaxSamples
// samples, an error matching ErrRateLimiterTimeout (and
// context.DeadlineExceeded) when the server's limiter timed out, ErrClosed
// after Close, and ctx's error if ctx ends first.
func (s *Sampler) Next(ctx context.Context) (Sample, error) {
	if s.failed.Load() {
		return Sample{}, s.stickyErr()
	}
	if s.opts.maxSamples > 0 && s.delivered.Load() >= s.opts.maxSamples {
		return Sample{}, io.EOF
	}
	if s.closed.Load() {
		return Sample{}, ErrClosed
	}
	for len(s.pending) == 0 {
		select {
		case r := <-s.out:
			if r.err != nil {
				s.setErr(r.err)
				return Sample{}, r.err
			}
			s.pending, s.pendingWorker = r.batch, r.worker
		case <-ctx.Done():
			return Sample{}, ctx.Err()
		case <-s.ctx.Done():
			return Sample{}, s.stickyErrOr(ErrClosed)
		}
	}
	smp := s.pending[0]
	s.pending[0] = Sample{} // the batch's array must not keep it alive
	s.pending = s.pending[1:]
	s.queued.Add(-1)
	s.delivered.Add(1)
	s.workers[s.pendingWorker].returnCredit()
	return smp, nil
}

// NextBatch returns n samples with each column stacked: a column of shape
// S becomes [n, S...]. All n samples must have the same column shapes.
func (s *Sampler) NextBatch(ctx context.Context, n int) (Batch, error) {
	if n < 1 {
		return Batch{}, fmt.Errorf("%w: batch size %d", ErrInvalidArgument, n)
	}
	samples := make([]Sample, 0, n)
	for len(samples) < n {
		smp, err := s.Next(ctx)
		if err != nil {
			return Batch{}, err
		}
		samples = append(samples, smp)
	}
	return stack(samples)
}

func stack(samples []Sample) (Batch, error) {
	first := samples[0]
	b := Batch{Infos: make([]SampleInfo, len(samples)), Names: first.Names, Columns: make([]Tensor, len(first.Columns))}
	for ci, col := range first.Columns {
		out := Tensor{DType: col.DType, Shape: append([]int{len(samples)}, col.Shape...), Data: make([]byte, 0, len(col.Data)*len(samples))}
		for i, smp := range samples {
			if len(smp.Columns) != len(first.Columns) {
				return Batch{}, fmt.Errorf("%w: sample %d has %d columns, sample 0 has %d", ErrInvalidArgument, i, len(smp.Columns), len(first.Columns))
			}
			c := smp.Columns[ci]
			if c.DType != col.DType || !slices.Equal(c.Shape, col.Shape) {
				return Batch{}, fmt.Errorf("%w: column %d of sample %d is %s%v, sample 0 has %s%v", ErrInvalidArgument, ci, i, c.DType, c.Shape, col.DType, col.Shape)
			}
			out.Data = append(out.Data, c.Data...)
		}
		b.Columns[ci] = out
	}
	for i, smp := range samples {
		b.Infos[i] = smp.Info
	}
	return b, nil
}

// Close stops the streams and waits for their goroutines. Samples not yet
// returned are dropped.
func (s *Sampler) Close() error {
	s.closed.Store(true)
	s.cancel()
	s.wg.Wait()
	return nil
}

// reserve takes up to n samples from the budget and returns how many.
func (s *Sampler) reserve(n int64) int64 {
	for {
		b := s.budget.Load()
		if b < 0 {
			return n
		}
		take := min(b, n)
		if take <= 0 || s.budget.CompareAndSwap(b, b-take) {
			return max(take, 0)
		}
	}
}

// unreserve returns credit that was granted but never used (its stream
// ended) to the budget.
func (s *Sampler) unreserve(n int64) {
	if n > 0 && s.budget.Load() >= 0 {
		s.budget.Add(n)
	}
}

func (s *Sampler) stickyErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *Sampler) stickyErrOr(def error) error {
	if err := s.stickyErr(); err != nil {
		return err
	}
	return def
}

func (s *Sampler) setErr(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
		s.failed.Store(true)
	}
	s.errMu.Unlock()
}

// sampleWorker runs one sample stream, reopening it when the server is
// unavailable.
type sampleWorker struct {
	s  *Sampler
	id int
	// owed counts samples handed to Next whose credit has not been
	// returned to the server yet; it is returned a quarter of the
	// prefetch window at a time.
	owed *creditCounter
	dec  responseDecoder
}

func (w *sampleWorker) returnCredit() { w.owed.add(1) }

func (w *sampleWorker) run() {
	defer w.s.wg.Done()
	backoff := time.Millisecond
	for {
		err := w.stream()
		if w.s.ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrUnavailable) {
			// The server went away (restart, shutdown): reconnect.
			select {
			case <-time.After(backoff):
			case <-w.s.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		if err == nil {
			// A clean end (the max-samples budget is spent): only the last
			// worker to finish reports the end, after everything buffered.
			if w.s.active.Add(-1) > 0 {
				return
			}
			err = io.EOF
		}
		select {
		case w.s.out <- sampleResult{err: err, worker: w.id}:
		case <-w.s.ctx.Done():
		}
		return
	}
}

// stream runs one Sample RPC until it fails or the sampler closes.
func (w *sampleWorker) stream() error {
	s := w.s
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	st, err := s.c.rpc.Sample(ctx, grpc.WaitForReady(true))
	if err != nil {
		return fromStatus(err)
	}
	// Reading the stream's context commits it: gRPC then no longer retries
	// it transparently on a new transport, which would leave Send failing
	// on the old attempt while Recv waits on the new one.
	_ = st.Context()

	// Credit for a new stream: the prefetch window minus samples of earlier
	// streams still buffered for Next, within the max-samples budget.
	w.owed.reset()
	buffered := s.queued.Load()
	initial := s.reserve(max(int64(1), int64(s.opts.prefetch)-buffered))
	if initial == 0 {
		return nil // every allowed sample has been requested
	}
	var granted, received atomic.Int64
	granted.Store(initial)
	defer func() { s.unreserve(granted.Load() - received.Load()) }()
	if err := st.Send(buildSampleRequest(s.table, int32(initial), s.opts.timeout, 0)); err != nil {
		return fromStatus(recvErr(st, err))
	}

	sendErr := make(chan error, 1)
	senderDone := make(chan struct{})
	// The stream ends only once its sender has: a sender outliving it could
	// take the next stream's kick and owed credit, or grant after the
	// deferred unreserve has run.
	defer func() {
		cancel()
		<-senderDone
	}()
	go func() {
		defer close(senderDone)
		for {
			n, _ := w.owed.wait(ctx)
			if n == 0 || ctx.Err() != nil {
				return
			}
			w.owed.take(n)
			if n = s.reserve(n); n == 0 {
				continue
			}
			granted.Add(n)
			if err := st.Send(buildSampleRequest("", int32(n), 0, 0)); err != nil {
				sendErr <- err
				return
			}
		}
	}()

	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fromStatus(err)
		}
		samples, err := w.dec.decode(messageBytes(resp))
		if n := int64(len(samples)); n > 0 {
			received.Add(n)
			s.queued.Add(n)
			select {
			case s.out <- sampleResult{batch: samples, worker: w.id}:
			case <-ctx.Done():
				s.queued.Add(-n)
				return ctx.Err()
			}
		}
		if err != nil {
			return err
		}
		select {
		case err := <-sendErr:
			return fromStatus(recvErr(st, err))
		default:
		}
	}
}

// recvErr returns the stream's real status after a Send failed with io.EOF
// (gRPC reports the status only on Recv).
func recvErr(st wire.ReplayService_SampleClient, err error) error {
	if errors.Is(err, io.EOF) {
		for {
			if _, rerr := st.Recv(); rerr != nil {
				return rerr
			}
		}
	}
	return err
}
