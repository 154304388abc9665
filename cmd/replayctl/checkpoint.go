package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recall-rl/recall/replay"
)

// The checkpoint command: with no argument it asks a server to write a
// checkpoint; "ls DIR" and "inspect PATH" read checkpoints on disk without a
// server (see docs/checkpoints.md).

const checkpointSynopsis = "[ls DIR | inspect PATH]"

func runCheckpointCommand(ctx context.Context, g *globalOptions, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "ls":
			return runCheckpointLs(g, args[1:], stdout, stderr)
		case "inspect":
			return runCheckpointInspect(g, args[1:], stdout, stderr)
		}
	}
	return runCheckpointRPC(ctx, g, args, stdout, stderr)
}

func runCheckpointRPC(ctx context.Context, g *globalOptions, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("checkpoint", checkpointSynopsis, g, stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: replayctl [global flags] checkpoint            ask the server to write a checkpoint; print its path
       replayctl checkpoint ls DIR [--json] [--quick]    list the checkpoints in DIR (no server needed)
       replayctl checkpoint inspect PATH [--json] [--items N] [--quick]
                                           show what a checkpoint holds (PATH: a checkpoint, a
                                           durable store, or a checkpoint directory: the state a
                                           server would restore)

A large checkpoint takes a while: raise --timeout if the call times out.

Flags (including the global ones):
`)
		fs.PrintDefaults()
	}
	if _, code, ok := parseCommand(fs, args, 0, stdout, stderr); !ok {
		return code
	}
	c, err := g.dial(ctx)
	if err != nil {
		return fail(stderr, "checkpoint", err)
	}
	defer c.Close()
	path, err := c.Checkpoint(ctx)
	if errors.Is(err, replay.ErrUnimplemented) {
		fmt.Fprintf(stderr, "replayctl: checkpoint: the server at %s does not support checkpoints (start replayd with --checkpoint-dir)\n", g.addr)
		return exitError
	}
	if err != nil {
		return fail(stderr, "checkpoint", err)
	}
	fmt.Fprintln(stdout, path)
	return exitOK
}

// checkpointJSON is one checkpoint in the JSON output of ls and inspect.
type checkpointJSON struct {
	Name       string                  `json:"name"`
	Path       string                  `json:"path"`
	Kind       string                  `json:"kind"`
	Created    time.Time               `json:"created"`
	Complete   bool                    `json:"complete"`
	Restore    bool                    `json:"restore"`
	Status     string                  `json:"status"`
	Tables     []checkpointTableJSON   `json:"tables"`
	NumChunks  int64                   `json:"num_chunks"`
	ChunkBytes int64                   `json:"chunk_bytes"`
	DiskBytes  int64                   `json:"disk_bytes"`
	Items      []replay.CheckpointItem `json:"items,omitempty"`
}

type checkpointTableJSON struct {
	Name  string `json:"name"`
	Items int64  `json:"items"`
	tableConfigJSON

	Inserts             int64        `json:"inserts"`
	Samples             int64        `json:"samples"`
	Deletes             int64        `json:"deletes"`
	NumDeletedEpisodes  int64        `json:"num_deleted_episodes"`
	NumUniqueSamples    int64        `json:"num_unique_samples"`
	SampleBlockedReason string       `json:"sample_blocked_reason"`
	InsertBlockedReason string       `json:"insert_blocked_reason"`
	Signature           []columnJSON `json:"signature,omitempty"`
}

func toCheckpointJSON(ci replay.CheckpointInfo, items []replay.CheckpointItem) checkpointJSON {
	out := checkpointJSON{
		Name: filepath.Base(ci.Path), Path: ci.Path, Kind: ci.Kind, Created: ci.Created.UTC(), Complete: ci.Complete,
		Restore: ci.Restore, Status: ci.Status(), Tables: []checkpointTableJSON{},
		NumChunks: ci.NumChunks, ChunkBytes: ci.ChunkBytes, DiskBytes: ci.DiskBytes, Items: items,
	}
	for _, t := range ci.Tables {
		o := t.Options
		out.Tables = append(out.Tables, checkpointTableJSON{
			Name:                t.Name,
			Items:               t.Items,
			tableConfigJSON:     toTableConfigJSON(o.MaxSize, o.MaxTimesSampled, o.Sampler, o.Remover, o.RateLimiter),
			Inserts:             t.Limiter.Inserts,
			Samples:             t.Limiter.Samples,
			Deletes:             t.Limiter.Deletes,
			NumDeletedEpisodes:  t.NumDeletedEpisodes,
			NumUniqueSamples:    t.NumUniqueSamples,
			SampleBlockedReason: t.SampleBlockedReason,
			InsertBlockedReason: t.InsertBlockedReason,
			Signature:           signatureJSON(o.Signature),
		})
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runCheckpointLs(g *globalOptions, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("checkpoint ls", "DIR [--json] [--quick]", g, stderr)
	asJSON := fs.Bool("json", false, "print the list as JSON")
	quick := fs.Bool("quick", false, "check file sizes only, not checksums (faster for large checkpoints)")
	pos, code, ok := parseCommand(fs, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	infos, err := replay.ListCheckpoints(pos[0], replay.InspectOptions{Quick: *quick})
	if err != nil {
		return fail(stderr, "checkpoint ls", err)
	}
	if *asJSON {
		out := make([]checkpointJSON, 0, len(infos))
		for _, ci := range infos {
			out = append(out, toCheckpointJSON(ci, nil))
		}
		if err := writeJSON(stdout, out); err != nil {
			return fail(stderr, "checkpoint ls", err)
		}
		return exitOK
	}
	if len(infos) == 0 {
		fmt.Fprintf(stdout, "no checkpoints in %s\n", pos[0])
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tKIND\tCREATED\tTABLES\tITEMS\tCHUNKS\tDATA\tDISK\tSTATUS")
	for _, ci := range infos {
		mark := " "
		if ci.Restore {
			mark = "*"
		}
		items := int64(0)
		for _, t := range ci.Tables {
			items += t.Items
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", mark, filepath.Base(ci.Path), ci.Kind, formatCreated(ci),
			len(ci.Tables), items, ci.NumChunks, formatBytes(ci.ChunkBytes), formatBytes(ci.DiskBytes), ci.Status())
	}
	if err := tw.Flush(); err != nil {
		return fail(stderr, "checkpoint ls", err)
	}
	fmt.Fprintf(stdout, "\n* what replayd --checkpoint-dir %s would restore\n", pos[0])
	return exitOK
}

func runCheckpointInspect(g *globalOptions, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("checkpoint inspect", "PATH [--json] [--items N] [--quick]", g, stderr)
	asJSON := fs.Bool("json", false, "print as JSON")
	nItems := fs.Int("items", 0, "also list the first `N` items of each table in insertion order (-1: all)")
	quick := fs.Bool("quick", false, "check file sizes only, not checksums")
	pos, code, ok := parseCommand(fs, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	ci, items, err := replay.InspectCheckpoint(pos[0], replay.InspectOptions{Quick: *quick, Items: *nItems})
	if err != nil && ci.Path == "" {
		return fail(stderr, "checkpoint inspect", err)
	}
	if *asJSON {
		if werr := writeJSON(stdout, toCheckpointJSON(ci, items)); werr != nil {
			return fail(stderr, "checkpoint inspect", werr)
		}
	} else if werr := writeCheckpointText(stdout, ci, items); werr != nil {
		return fail(stderr, "checkpoint inspect", werr)
	}
	if err != nil {
		return fail(stderr, "checkpoint inspect", fmt.Errorf("%s: %w", ci.Path, err))
	}
	return exitOK
}

// formatCreated returns when ci was created (or last written), or "-" if
// that is unknown.
func formatCreated(ci replay.CheckpointInfo) string {
	if ci.Created.IsZero() {
		return "-"
	}
	return ci.Created.UTC().Format(time.RFC3339Nano)
}

func writeCheckpointText(w io.Writer, ci replay.CheckpointInfo, items []replay.CheckpointItem) error {
	what := "captured"
	if ci.Kind == "durable" {
		what = "last write"
	}
	fmt.Fprintf(w, "%s %s\n", ci.Kind, ci.Path)
	fmt.Fprintf(w, "  %s: %s\n", what, formatCreated(ci))
	fmt.Fprintf(w, "  status: %s\n", ci.Status())
	if ci.Err != nil && len(ci.Tables) == 0 {
		return nil
	}
	fmt.Fprintf(w, "  %s, %s (%s of data), %s on disk\n\n", plural(len(ci.Tables), "table"), plural(int(ci.NumChunks), "chunk"),
		formatBytes(ci.ChunkBytes), formatBytes(ci.DiskBytes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tITEMS\tMAX_SIZE\tSAMPLER\tREMOVER\tMAX_TIMES_SAMPLED\tRATE_LIMITER\tINSERTS\tSAMPLES\tDELETES\tUNIQUE_SAMPLES\tDELETED_EPISODES")
	for _, t := range ci.Tables {
		o := t.Options
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\n", t.Name, t.Items, o.MaxSize, o.Sampler, o.Remover,
			o.MaxTimesSampled, o.RateLimiter, t.Limiter.Inserts, t.Limiter.Samples, t.Limiter.Deletes, t.NumUniqueSamples, t.NumDeletedEpisodes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	blank := false
	for _, t := range ci.Tables {
		if t.Options.Signature != nil {
			var cols []string
			for _, c := range t.Options.Signature.Columns {
				cols = append(cols, fmt.Sprintf("%s %s%v", c.Name, c.DType, c.Shape))
			}
			if !blank {
				fmt.Fprintln(w)
				blank = true
			}
			fmt.Fprintf(w, "%s: signature: %s\n", t.Name, strings.Join(cols, ", "))
		}
		for _, r := range []struct{ what, reason string }{{"sampling", t.SampleBlockedReason}, {"inserting", t.InsertBlockedReason}} {
			if r.reason == "" {
				continue
			}
			if !blank {
				fmt.Fprintln(w)
				blank = true
			}
			fmt.Fprintf(w, "%s: once restored (with these options), %s is blocked: %s\n", t.Name, r.what, r.reason)
		}
	}
	if len(items) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tKEY\tPRIORITY\tTIMES_SAMPLED\tINSERTED_AT\tCHUNKS")
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%d\t%g\t%d\t%s\t%d\n", it.Table, it.Key, it.Priority, it.TimesSampled,
			it.InsertedAt.UTC().Format(time.RFC3339Nano), len(it.ChunkKeys))
	}
	return tw.Flush()
}
