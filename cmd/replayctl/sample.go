package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/recall-rl/recall/replay"
)

// sampleJSON is one line of "sample --json".
type sampleJSON struct {
	Table        string       `json:"table"`
	Key          uint64       `json:"key"`
	Priority     float64      `json:"priority"`
	Probability  float64      `json:"probability"`
	TimesSampled int32        `json:"times_sampled"`
	TableSize    int64        `json:"table_size"`
	InsertedAt   time.Time    `json:"inserted_at"`
	RateLimited  bool         `json:"rate_limited"`
	Columns      []columnJSON `json:"columns"`
}

func runSample(ctx context.Context, g *globalOptions, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("sample", "TABLE [-n N] [--json]", g, stderr)
	n := fs.Int64("n", 1, "number of items to sample")
	asJSON := fs.Bool("json", false, "print one JSON object per sample")
	pos, code, ok := parseCommand(fs, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	if *n < 1 {
		fmt.Fprintf(stderr, "replayctl sample: -n %d: must be >= 1\n", *n)
		fs.Usage()
		return exitUsage
	}
	name := pos[0]
	c, err := g.dial(ctx)
	if err != nil {
		return fail(stderr, "sample", err)
	}
	defer c.Close()

	// Sampling changes the table (times sampled, limiter counters, and
	// deletions under max_times_sampled), so ask the server for one item at
	// a time rather than prefetching items that would be dropped.
	opts := []replay.SamplerOption{replay.WithMaxSamples(*n), replay.WithPrefetch(1)}
	if g.timeout > 0 {
		opts = append(opts, replay.WithRateLimiterTimeout(g.timeout))
	}
	smp, err := c.NewSampler(name, opts...)
	if err != nil {
		return fail(stderr, "sample", err)
	}
	defer smp.Close()
	enc := json.NewEncoder(stdout)
	for range *n {
		s, err := nextSample(ctx, smp, g.timeout)
		if err != nil {
			return sampleFailed(ctx, c, g, name, err, stderr)
		}
		cols := columns(s)
		if *asJSON {
			i := s.Info
			err = enc.Encode(sampleJSON{Table: name, Key: i.Key, Priority: i.Priority, Probability: i.Probability,
				TimesSampled: i.TimesSampled, TableSize: i.TableSize, InsertedAt: i.InsertedAt.UTC(),
				RateLimited: i.RateLimited, Columns: cols})
		} else {
			err = writeSampleText(stdout, s.Info, cols)
		}
		if err != nil {
			return fail(stderr, "sample", err)
		}
	}
	return exitOK
}

// nextSample bounds a wait for a sample: the server ends a rate-limiter
// wait after timeout, so this only fires when the server stops answering
// (the sampler keeps reconnecting to an unavailable server).
func nextSample(ctx context.Context, smp *replay.Sampler, timeout time.Duration) (replay.Sample, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*timeout+5*time.Second)
		defer cancel()
	}
	return smp.Next(ctx)
}

func sampleFailed(ctx context.Context, c *replay.Client, g *globalOptions, table string, err error, stderr io.Writer) int {
	if !errors.Is(err, replay.ErrRateLimiterTimeout) {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer from the server within %v: %w", 2*g.timeout+5*time.Second, err)
		}
		return fail(stderr, "sample", err)
	}
	// Say why the limiter blocks, if the server can tell.
	msg := fmt.Sprintf("no sample of table %s within --timeout %v: the rate limiter blocks sampling", table, g.timeout)
	if si, ierr := c.ServerInfo(ctx); ierr == nil {
		for _, t := range si.Tables {
			if t.Name == table && t.SampleBlockedReason != "" {
				msg += ": " + t.SampleBlockedReason
			}
		}
	}
	fmt.Fprintf(stderr, "replayctl: sample: %s\n", msg)
	return exitError
}

func columns(s replay.Sample) []columnJSON {
	cols := make([]columnJSON, len(s.Columns))
	for i, t := range s.Columns {
		cols[i] = columnJSON{DType: t.DType.String(), Shape: shapeJSON(t.Shape)}
		if i < len(s.Names) {
			cols[i].Name = s.Names[i]
		}
	}
	return cols
}

// writeSampleText prints a sample as one line of key=value pairs.
func writeSampleText(w io.Writer, i replay.SampleInfo, cols []columnJSON) error {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	var b strings.Builder
	fmt.Fprintf(&b, "key=%d priority=%s probability=%s times_sampled=%d table_size=%d inserted_at=%s rate_limited=%t",
		i.Key, f(i.Priority), f(i.Probability), i.TimesSampled, i.TableSize,
		i.InsertedAt.UTC().Format(time.RFC3339Nano), i.RateLimited)
	if len(cols) > 0 {
		b.WriteString(" columns=")
		for j, c := range cols {
			if j > 0 {
				b.WriteByte(',')
			}
			dims := make([]string, len(c.Shape))
			for k, d := range c.Shape {
				dims[k] = strconv.Itoa(d)
			}
			fmt.Fprintf(&b, "%s:%s[%s]", c.Name, c.DType, strings.Join(dims, ","))
		}
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
