package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recall-rl/recall/replay"
)

// Load generator modes.
const (
	ModeInsert = "insert" // writers insert items as fast as the server acknowledges them
	ModeSample = "sample" // samplers stream items of a pre-filled table
	ModeMixed  = "mixed"  // half the clients insert, half sample, at once
	ModeRaw    = "raw"    // plain gRPC streams of the same message sizes: the ceiling
)

// LoadConfig describes one load-generator run.
type LoadConfig struct {
	// Mode is one of ModeInsert, ModeSample, ModeMixed and ModeRaw.
	Mode string
	// Table receives inserts and serves samples.
	Table string
	// ItemSize is the payload of one item in bytes (random float32 values,
	// so compression cannot help); rounded down to a multiple of 4.
	ItemSize int
	// ItemsPerMessage is the most items a writer sends in one message, and
	// the batch of samples one raw sample request asks for.
	ItemsPerMessage int
	// Clients is the number of concurrent writers or samplers (each on its
	// own connection).
	Clients int
	// Duration is how long the measured phase lasts.
	Duration time.Duration
	// Prefetch is each sampler's credit. Default 256.
	Prefetch int
	// Compression is the writers' chunk compression.
	Compression replay.Compression
	// Dial connects one client.
	Dial func(ctx context.Context) (*replay.Client, error)
}

// Result is what a run measured. In mixed mode the insert and sample halves
// are reported separately and ItemsPerSec and BytesPerSec are their sums;
// in raw mode Insert* is the upload ceiling and Sample* the download one.
type Result struct {
	Mode        string  `json:"mode"`
	ItemSize    int     `json:"item_size"`
	Clients     int     `json:"clients"`
	Seconds     float64 `json:"seconds"`
	Items       int64   `json:"items"`
	ItemsPerSec float64 `json:"items_per_sec"`
	BytesPerSec float64 `json:"bytes_per_sec"`

	InsertItemsPerSec float64 `json:"insert_items_per_sec,omitempty"`
	InsertBytesPerSec float64 `json:"insert_bytes_per_sec,omitempty"`
	SampleItemsPerSec float64 `json:"sample_items_per_sec,omitempty"`
	SampleBytesPerSec float64 `json:"sample_bytes_per_sec,omitempty"`
}

func (c *LoadConfig) validate() error {
	switch c.Mode {
	case ModeInsert, ModeSample, ModeMixed, ModeRaw:
	default:
		return fmt.Errorf("bench: unknown mode %q (want insert, sample, mixed or raw)", c.Mode)
	}
	switch {
	case c.ItemSize < 4:
		return fmt.Errorf("bench: item size must be >= 4 bytes, got %d", c.ItemSize)
	case c.ItemsPerMessage < 1:
		return fmt.Errorf("bench: items per message must be >= 1, got %d", c.ItemsPerMessage)
	case c.Clients < 1:
		return fmt.Errorf("bench: clients must be >= 1, got %d", c.Clients)
	case c.Duration <= 0:
		return fmt.Errorf("bench: duration must be > 0, got %v", c.Duration)
	case c.Mode != ModeRaw && c.Table == "":
		return errors.New("bench: a table is required")
	case c.Dial == nil:
		return errors.New("bench: no Dial function")
	case c.Mode == ModeMixed && c.Clients < 2:
		return errors.New("bench: mixed mode needs at least 2 clients")
	}
	if c.Prefetch == 0 {
		c.Prefetch = 256
	}
	return nil
}

// RunLoad runs the load described by cfg and reports its throughput.
func RunLoad(ctx context.Context, cfg LoadConfig) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	cfg.ItemSize &^= 3
	res := Result{Mode: cfg.Mode, ItemSize: cfg.ItemSize, Clients: cfg.Clients}
	var err error
	switch cfg.Mode {
	case ModeInsert:
		var n int64
		n, _, res.Seconds, err = runMixed(ctx, cfg, cfg.Clients, 0)
		res.Items = n
		res.InsertItemsPerSec = float64(n) / res.Seconds
	case ModeSample:
		if err = prefill(ctx, cfg); err != nil {
			return res, err
		}
		var n int64
		_, n, res.Seconds, err = runMixed(ctx, cfg, 0, cfg.Clients)
		res.Items = n
		res.SampleItemsPerSec = float64(n) / res.Seconds
	case ModeMixed:
		if err = prefill(ctx, cfg); err != nil {
			return res, err
		}
		ins := cfg.Clients / 2
		var in, out int64
		in, out, res.Seconds, err = runMixed(ctx, cfg, ins, cfg.Clients-ins)
		res.Items = in + out
		res.InsertItemsPerSec = float64(in) / res.Seconds
		res.SampleItemsPerSec = float64(out) / res.Seconds
	case ModeRaw:
		res, err = runRaw(ctx, cfg, res)
	}
	if err != nil {
		return res, err
	}
	res.InsertBytesPerSec = res.InsertItemsPerSec * float64(cfg.ItemSize)
	res.SampleBytesPerSec = res.SampleItemsPerSec * float64(cfg.ItemSize)
	res.ItemsPerSec = res.InsertItemsPerSec + res.SampleItemsPerSec
	res.BytesPerSec = res.InsertBytesPerSec + res.SampleBytesPerSec
	if cfg.Mode == ModeRaw {
		// The raw ceiling is a per-direction figure; report the upload one
		// as the headline, like insert mode.
		res.ItemsPerSec, res.BytesPerSec = res.InsertItemsPerSec, res.InsertBytesPerSec
	}
	return res, nil
}

// payloads returns a few random float32 tensors of the item size to cycle
// through, so generating data costs nothing in the measured loop.
func payloads(size int, seed uint64) []replay.Tensor {
	r := rand.New(rand.NewPCG(seed, 99))
	out := make([]replay.Tensor, 8)
	for i := range out {
		v := make([]float32, size/4)
		for j := range v {
			v[j] = r.Float32()
		}
		out[i], _ = replay.FromSlice(v)
	}
	return out
}

func writerOptions(cfg LoadConfig) replay.WriterOptions {
	return replay.WriterOptions{
		ChunkLength:      1,
		ItemsPerMessage:  cfg.ItemsPerMessage,
		MaxInFlightItems: max(1024, 8*cfg.ItemsPerMessage),
		Compression:      cfg.Compression,
	}
}

// insertLoop inserts items through w until stop, waits for their
// acknowledgements, and returns how many it created.
func insertLoop(ctx context.Context, w *replay.Writer, cfg LoadConfig, id int, stop <-chan struct{}) (int64, error) {
	data := payloads(cfg.ItemSize, uint64(id)+1)
	hist := w.History("obs")
	var n int64
	for i := 0; ; i++ {
		select {
		case <-stop:
			return n, w.Flush(ctx)
		default:
		}
		if err := w.Append(map[string]replay.Tensor{"obs": data[i%len(data)]}); err != nil {
			return n, err
		}
		if err := w.CreateItem(ctx, cfg.Table, 1, hist.Last(1)); err != nil {
			return n, err
		}
		n++
	}
}

// sampleLoop takes samples from s until stop and returns how many it got.
func sampleLoop(ctx context.Context, s *replay.Sampler, stop <-chan struct{}) (int64, error) {
	var n int64
	for {
		select {
		case <-stop:
			return n, nil
		default:
		}
		if _, err := s.Next(ctx); err != nil {
			return n, err
		}
		n++
	}
}

// prefill inserts enough items for samplers to start (16 per client, at
// least 1000) before the measured phase.
func prefill(ctx context.Context, cfg LoadConfig) error {
	c, err := cfg.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	w, err := c.NewWriter(writerOptions(cfg))
	if err != nil {
		return err
	}
	defer w.Close()
	data := payloads(cfg.ItemSize, 1234)
	hist := w.History("obs")
	for i := 0; i < max(1000, 16*cfg.Clients); i++ {
		if err := w.Append(map[string]replay.Tensor{"obs": data[i%len(data)]}); err != nil {
			return err
		}
		if err := w.CreateItem(ctx, cfg.Table, 1, hist.Last(1)); err != nil {
			return err
		}
	}
	return w.Flush(ctx)
}

// runMixed runs inserters and samplers, each on its own connection, for
// cfg.Duration and returns their counts and the elapsed time. Connections,
// writers and samplers are opened before the clock starts.
func runMixed(ctx context.Context, cfg LoadConfig, inserters, samplers int) (in, out int64, secs float64, err error) {
	clients := make([]*replay.Client, inserters+samplers)
	for i := range clients {
		if clients[i], err = cfg.Dial(ctx); err != nil {
			return 0, 0, 0, err
		}
		defer clients[i].Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	var insTotal, smpTotal atomic.Int64
	loops := make([]func() error, len(clients))
	for i, c := range clients {
		if i < inserters {
			w, err := c.NewWriter(writerOptions(cfg))
			if err != nil {
				return 0, 0, 0, err
			}
			defer w.Close()
			loops[i] = func() error {
				n, err := insertLoop(ctx, w, cfg, i, stop)
				insTotal.Add(n)
				return err
			}
		} else {
			s, err := c.NewSampler(cfg.Table, replay.WithPrefetch(cfg.Prefetch))
			if err != nil {
				return 0, 0, 0, err
			}
			defer s.Close()
			loops[i] = func() error {
				n, err := sampleLoop(ctx, s, stop)
				smpTotal.Add(n)
				return err
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	start := time.Now()
	for _, loop := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loop(); err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		}()
	}
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	close(stop)
	// Samplers and writers may be blocked by the rate limiter when the
	// other side stops; give them a moment, then cut them off.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cancel()
		<-done
	}
	secs = time.Since(start).Seconds()
	select {
	case err = <-errs:
	default:
	}
	return insTotal.Load(), smpTotal.Load(), secs, err
}

// rawBatchBytes is the most item bytes in one raw message: the writer's
// cap on the chunk data of one insert request.
const rawBatchBytes = 4 << 20

// runRaw measures plain gRPC streams carrying the same bytes: messages of
// as many items as an insert request carries (ItemsPerMessage, or fewer
// when they would exceed rawBatchBytes) up, and the same down.
func runRaw(ctx context.Context, cfg LoadConfig, res Result) (Result, error) {
	msgSize := cfg.ItemSize * min(cfg.ItemsPerMessage, max(1, rawBatchBytes/cfg.ItemSize))
	phase := func(up bool) (float64, error) {
		clients := make([]*replay.Client, cfg.Clients)
		for i := range clients {
			var err error
			if clients[i], err = cfg.Dial(ctx); err != nil {
				return 0, err
			}
			defer clients[i].Close()
		}
		deadline := time.Now().Add(cfg.Duration)
		var bytes atomic.Int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		start := time.Now()
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				const perCall = 64
				for time.Now().Before(deadline) {
					var err error
					if up {
						err = c.BenchRawInsert(ctx, msgSize, perCall, 8)
					} else {
						err = c.BenchRawSample(ctx, msgSize, perCall, 8)
					}
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					bytes.Add(int64(perCall * msgSize))
				}
			}()
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return 0, err
		}
		return float64(bytes.Load()) / time.Since(start).Seconds(), nil
	}
	up, err := phase(true)
	if err != nil {
		return res, err
	}
	down, err := phase(false)
	if err != nil {
		return res, err
	}
	res.Seconds = 2 * cfg.Duration.Seconds()
	res.InsertItemsPerSec = up / float64(cfg.ItemSize)
	res.SampleItemsPerSec = down / float64(cfg.ItemSize)
	res.Items = int64((res.InsertItemsPerSec + res.SampleItemsPerSec) * cfg.Duration.Seconds())
	return res, nil
}
