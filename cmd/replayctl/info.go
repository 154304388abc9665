package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/recall-rl/recall/replay"
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

// tableJSON is one table of infoJSON. The selector and rate limiter fields
// are descriptions such as "prioritized(0.6)" and "MinSize(1)"; the
// limiter's parameters follow as numbers (a bound of ±1.7976931348623157e308
// is unbounded).
type tableJSON struct {
	Name            string `json:"name"`
	Size            int64  `json:"size"`
	MaxSize         int64  `json:"max_size"`
	MaxTimesSampled int32  `json:"max_times_sampled"`
	Sampler         string `json:"sampler"`
	Remover         string `json:"remover"`
	RateLimiter     string `json:"rate_limiter"`

	SamplesPerInsert float64 `json:"samples_per_insert"`
	MinSizeToSample  int64   `json:"min_size_to_sample"`
	MinDiff          float64 `json:"min_diff"`
	MaxDiff          float64 `json:"max_diff"`

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
		tj := tableJSON{
			Name:                t.Name,
			Size:                t.Size,
			MaxSize:             t.MaxSize,
			MaxTimesSampled:     t.MaxTimesSampled,
			Sampler:             t.Sampler.String(),
			Remover:             t.Remover.String(),
			RateLimiter:         t.RateLimiter.String(),
			SamplesPerInsert:    t.RateLimiter.SamplesPerInsert,
			MinSizeToSample:     t.RateLimiter.MinSizeToSample,
			MinDiff:             t.RateLimiter.MinDiff,
			MaxDiff:             t.RateLimiter.MaxDiff,
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
		}
		if t.Signature != nil {
			for _, c := range t.Signature.Columns {
				shape := c.Shape
				if shape == nil {
					shape = []int{}
				}
				tj.Signature = append(tj.Signature, columnJSON{Name: c.Name, DType: c.DType.String(), Shape: shape})
			}
		}
		out.Tables = append(out.Tables, tj)
	}
	return out
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
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(toInfoJSON(g.addr, si)); err != nil {
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
