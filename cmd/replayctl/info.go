package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/replay"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// infoJSON is the output of "info --json".
type infoJSON struct {
	Address       string      `json:"address"`
	Version       string      `json:"version"`
	TablesStateID string      `json:"tables_state_id"`
	NumChunks     int64       `json:"num_chunks"`
	ChunkBytes    int64       `json:"chunk_bytes"`
	Tables        []tableJSON `json:"tables"`
}

// tableJSON is one table of infoJSON.
type tableJSON struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	tableConfigJSON

	// Limiter counters since the last reset.
	Inserts int64 `json:"inserts"`
	Samples int64 `json:"samples"`
	Deletes int64 `json:"deletes"`

	NumEpisodes        int64 `json:"num_episodes"`
	NumDeletedEpisodes int64 `json:"num_deleted_episodes"`
	NumUniqueSamples   int64 `json:"num_unique_samples"`
	InsertWaits        int64 `json:"insert_waits"`
	SampleWaits        int64 `json:"sample_waits"`
	InsertsWaiting     int   `json:"inserts_waiting"`
	SamplesWaiting     int   `json:"samples_waiting"`
	// The reasons are empty when a call of one item would not wait.
	SampleBlockedReason string `json:"sample_blocked_reason"`
	InsertBlockedReason string `json:"insert_blocked_reason"`
	Closed              bool   `json:"closed"`

	Signature []columnJSON `json:"signature,omitempty"`
}

// tableConfigJSON is a table's configuration, in tableJSON and
// checkpointTableJSON. The selector and rate limiter fields are
// descriptions such as "prioritized(0.6)" and "MinSize(1)"; the limiter's
// parameters follow as numbers (a bound of ±1.7976931348623157e308 is
// unbounded).
type tableConfigJSON struct {
	MaxSize         int64  `json:"max_size"`
	MaxTimesSampled int32  `json:"max_times_sampled"`
	Sampler         string `json:"sampler"`
	Remover         string `json:"remover"`
	RateLimiter     string `json:"rate_limiter"`

	SamplesPerInsert float64 `json:"samples_per_insert"`
	MinSizeToSample  int64   `json:"min_size_to_sample"`
	MinDiff          float64 `json:"min_diff"`
	MaxDiff          float64 `json:"max_diff"`
}

func toTableConfigJSON(maxSize int64, maxTimesSampled int32, smp, remover sampler.Spec, rl ratelimit.Config) tableConfigJSON {
	return tableConfigJSON{
		MaxSize: maxSize, MaxTimesSampled: maxTimesSampled,
		Sampler: smp.String(), Remover: remover.String(), RateLimiter: rl.String(),
		SamplesPerInsert: rl.SamplesPerInsert, MinSizeToSample: rl.MinSizeToSample, MinDiff: rl.MinDiff, MaxDiff: rl.MaxDiff,
	}
}

type columnJSON struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
}

func toInfoJSON(addr string, si replay.ServerInfo) infoJSON {
	out := infoJSON{
		Address:       addr,
		Version:       si.Version,
		TablesStateID: si.TablesStateID,
		NumChunks:     si.NumChunks,
		ChunkBytes:    si.ChunkBytes,
		Tables:        make([]tableJSON, 0, len(si.Tables)),
	}
	for _, t := range si.Tables {
		out.Tables = append(out.Tables, tableJSON{
			Name:                t.Name,
			Size:                t.Size,
			tableConfigJSON:     toTableConfigJSON(t.MaxSize, t.MaxTimesSampled, t.Sampler, t.Remover, t.RateLimiter),
			Inserts:             t.Limiter.Inserts,
			Samples:             t.Limiter.Samples,
			Deletes:             t.Limiter.Deletes,
			NumEpisodes:         t.NumEpisodes,
			NumDeletedEpisodes:  t.NumDeletedEpisodes,
			NumUniqueSamples:    t.NumUniqueSamples,
			InsertWaits:         t.InsertWaits,
			SampleWaits:         t.SampleWaits,
			InsertsWaiting:      t.InsertsWaiting,
			SamplesWaiting:      t.SamplesWaiting,
			SampleBlockedReason: t.SampleBlockedReason,
			InsertBlockedReason: t.InsertBlockedReason,
			Closed:              t.Closed,
			Signature:           signatureJSON(t.Signature),
		})
	}
	return out
}

// signatureJSON returns sig's columns, or nil.
func signatureJSON(sig *table.Signature) []columnJSON {
	if sig == nil {
		return nil
	}
	cols := make([]columnJSON, len(sig.Columns))
	for i, c := range sig.Columns {
		cols[i] = columnJSON{Name: c.Name, DType: c.DType.String(), Shape: shapeJSON(c.Shape)}
	}
	return cols
}

// shapeJSON returns shape, with nil as [] so that it prints as a list.
func shapeJSON(shape []int) []int {
	if shape == nil {
		return []int{}
	}
	return shape
}

func runInfo(ctx context.Context, g *globalOptions, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("info", "[--json]", g, stderr)
	asJSON := fs.Bool("json", false, "print the full server info as JSON")
	if _, code, ok := parseCommand(fs, args, 0, stdout, stderr); !ok {
		return code
	}
	c, err := g.dial(ctx)
	if err != nil {
		return fail(stderr, "info", err)
	}
	defer c.Close()
	si, err := c.ServerInfo(ctx)
	if err != nil {
		return fail(stderr, "info", err)
	}
	if *asJSON {
		if err := writeJSON(stdout, toInfoJSON(g.addr, si)); err != nil {
			return fail(stderr, "info", err)
		}
		return exitOK
	}
	if err := writeInfoText(stdout, si); err != nil {
		return fail(stderr, "info", err)
	}
	return exitOK
}

// writeInfoText prints the tables as an aligned table, then why sampling or
// inserting would wait in each table where it would, then a summary.
func writeInfoText(w io.Writer, si replay.ServerInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tMAX_SIZE\tSAMPLER\tREMOVER\tRATE_LIMITER\tINSERTS\tSAMPLES")
	for _, t := range si.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\n", t.Name, t.Size, t.MaxSize,
			t.Sampler, t.Remover, t.RateLimiter, t.Limiter.Inserts, t.Limiter.Samples)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	blank := false
	for _, t := range si.Tables {
		for _, r := range []struct{ what, reason string }{{"sampling", t.SampleBlockedReason}, {"inserting", t.InsertBlockedReason}} {
			if r.reason == "" {
				continue
			}
			if !blank {
				fmt.Fprintln(w)
				blank = true
			}
			fmt.Fprintf(w, "%s: %s blocked: %s\n", t.Name, r.what, r.reason)
		}
	}
	_, err := fmt.Fprintf(w, "\n%s, %s (%s), server version %s\n",
		plural(len(si.Tables), "table"), plural(int(si.NumChunks), "chunk"), formatBytes(si.ChunkBytes), si.Version)
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
