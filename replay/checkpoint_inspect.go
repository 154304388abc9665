package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/table"
)

// This file lets tools look inside checkpoints without a server
// (replayctl checkpoint ls and inspect).

// CheckpointInfo describes a checkpoint or a durable store.
type CheckpointInfo struct {
	Path string `json:"path"`
	// Kind is "checkpoint" or "durable".
	Kind string `json:"kind"`
	// Created is the instant a checkpoint captured its tables, or the last
	// write of a durable store.
	Created time.Time `json:"created"`
	// Complete is false for a directory left by an interrupted write
	// (*.tmp); a server ignores and deletes it.
	Complete bool `json:"complete"`
	// Err says why the checkpoint cannot be restored (corrupt, incomplete,
	// in use); nil if it can.
	Err error `json:"-"`
	// Restore marks the entry a server started on the directory would
	// restore.
	Restore    bool              `json:"restore"`
	Tables     []CheckpointTable `json:"tables"`
	NumChunks  int64             `json:"num_chunks"`
	ChunkBytes int64             `json:"chunk_bytes"`
	// DiskBytes is the size of the checkpoint's files.
	DiskBytes int64 `json:"disk_bytes"`
}

// Status is "ok" or why the checkpoint cannot be restored.
func (c *CheckpointInfo) Status() string {
	if c.Err == nil {
		return "ok"
	}
	return c.Err.Error()
}

// CheckpointTable describes one table of a checkpoint.
type CheckpointTable struct {
	Name string `json:"name"`
	// Options are the table's options when it was captured.
	Options            table.Options   `json:"-"`
	Items              int64           `json:"items"`
	Limiter            ratelimit.State `json:"limiter"`
	NumDeletedEpisodes int64           `json:"num_deleted_episodes"`
	NumUniqueSamples   int64           `json:"num_unique_samples"`
	// SampleBlockedReason and InsertBlockedReason say why, restored with
	// these options, the table would make a sample or an insert of one
	// item wait; empty if it would not.
	SampleBlockedReason string `json:"sample_blocked_reason"`
	InsertBlockedReason string `json:"insert_blocked_reason"`
}

// CheckpointItem is one item of a checkpoint.
type CheckpointItem struct {
	Table        string    `json:"table"`
	Key          uint64    `json:"key"`
	Priority     float64   `json:"priority"`
	TimesSampled int32     `json:"times_sampled"`
	InsertedAt   time.Time `json:"inserted_at"`
	ChunkKeys    []uint64  `json:"chunk_keys"`
}

// InspectOptions configure ListCheckpoints and InspectCheckpoint.
type InspectOptions struct {
	// Quick skips reading every file to check its CRC-32C (sizes are
	// still checked).
	Quick bool
	// Items is the number of items per table InspectCheckpoint returns,
	// in insertion order; < 0 returns all.
	Items int
	// Logger receives Pebble's messages; default: discarded.
	Logger *slog.Logger
}

func (o *InspectOptions) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var errIncomplete = errors.New("incomplete: left by an interrupted write; a server ignores it and deletes it at start")

// ListCheckpoints describes the checkpoints and the durable store in dir,
// newest first, verifying each, and marks the one a server would restore.
func ListCheckpoints(dir string, opts InspectOptions) ([]CheckpointInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []CheckpointInfo
	var dur *CheckpointInfo
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(dir, name)
		switch {
		case name == durableName && e.IsDir():
			ci, _ := inspectDurable(p, opts)
			dur = &ci
		case strings.HasPrefix(name, checkpointPrefix) && strings.HasSuffix(name, tmpSuffix):
			created, _ := parseCheckpointName(strings.TrimSuffix(name, tmpSuffix))
			out = append(out, CheckpointInfo{Path: p, Kind: storeKindCheckpoint, Created: created, Err: errIncomplete, DiskBytes: diskBytes(p)})
		case e.IsDir():
			if created, ok := parseCheckpointName(name); ok {
				ci := CheckpointInfo{Path: p, Kind: storeKindCheckpoint, Created: created, Complete: true}
				m, err := verifyCheckpoint(p, opts.Quick)
				if err != nil {
					ci.Err = err
				} else {
					ci.fromManifest(m)
				}
				ci.DiskBytes = diskBytes(p)
				out = append(out, ci)
			}
		}
	}
	if dur != nil {
		out = append(out, *dur)
	}
	// Newest first; a durable store wins a tie (the server prefers it).
	rank := func(ci CheckpointInfo) int {
		if ci.Kind == storeKindDurable {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(out, func(a, b CheckpointInfo) int {
		return cmp.Or(b.Created.Compare(a.Created), cmp.Compare(rank(a), rank(b)))
	})
	// The server's choice: the newest usable checkpoint captured after the
	// durable store's last write, else the durable store.
	for i := range out {
		if out[i].Err == nil {
			out[i].Restore = true
			break
		}
	}
	return out, nil
}

func (ci *CheckpointInfo) fromManifest(m *checkpointManifest) {
	ci.Created = m.Created
	ci.NumChunks, ci.ChunkBytes = m.NumChunks, m.ChunkBytes
	for _, t := range m.Tables {
		opts, err := t.Options.options()
		if err != nil {
			ci.Err = corruptf("%s: table %q: %v", manifestName, t.Options.Name, err)
			return
		}
		ci.Tables = append(ci.Tables, describeTable(opts, t.Items, t.Limiter, t.NumDeletedEpisodes, t.NumUniqueSamples))
	}
}

func describeTable(opts table.Options, items int64, st ratelimit.State, delEps, unique int64) CheckpointTable {
	ct := CheckpointTable{Name: opts.Name, Options: opts, Items: items, Limiter: st, NumDeletedEpisodes: delEps, NumUniqueSamples: unique}
	if lim, err := ratelimit.NewLimiter(opts.RateLimiter); err == nil {
		lim.Restore(st)
		ct.SampleBlockedReason = lim.SampleBlockedReason(1)
		ct.InsertBlockedReason = lim.InsertBlockedReason(1)
	}
	if ct.SampleBlockedReason == "" && items == 0 {
		ct.SampleBlockedReason = "table is empty"
	}
	return ct
}

func (ci *CheckpointInfo) fromContents(sc *storeContents) {
	ci.NumChunks, ci.ChunkBytes = int64(len(sc.chunks)), sc.chunkBytes
	ci.Tables = ci.Tables[:0]
	for _, t := range sc.tables {
		ci.Tables = append(ci.Tables, describeTable(t.opts, int64(len(t.items)), t.state.Limiter, t.state.NumDeletedEpisodes, t.state.NumUniqueSamples))
	}
}

// inspectDurable describes the durable store at p and returns what it
// holds; ci.Err says why it cannot be read (then sc is nil).
func inspectDurable(p string, opts InspectOptions) (ci CheckpointInfo, sc *storeContents) {
	ci = CheckpointInfo{Path: p, Kind: storeKindDurable, Complete: true, DiskBytes: diskBytes(p)}
	sc, err := readDurableReadOnly(p, opts)
	if err != nil {
		ci.Err = err
		return ci, nil
	}
	ci.Created = sc.asOf
	ci.fromContents(sc)
	return ci, sc
}

func readDurableReadOnly(p string, opts InspectOptions) (*storeContents, error) {
	db, err := openStoreReadOnly(filepath.Join(p, durableMetaName), opts.logger())
	if err != nil {
		if errors.Is(err, errStoreInUse) {
			return nil, err
		}
		return nil, corruptf("cannot open: %v", err)
	}
	defer db.Close()
	chunks, err := openChunkLog(filepath.Join(p, chunkLogDirName), true, CheckpointOptions{})
	if err != nil {
		return nil, err
	}
	defer chunks.close()
	sc, err := readStore(context.Background(), db, false, chunks)
	if err == nil && sc.meta.Kind != storeKindDurable {
		err = corruptf("store kind %q", sc.meta.Kind)
	}
	if err == nil && sc.asOf.IsZero() {
		err = corruptf("no as-of record")
	}
	return sc, err
}

// InspectCheckpoint describes one checkpoint, read whole from its store,
// and returns up to opts.Items items of each table. path is a checkpoint
// directory, a durable store, or a checkpoint directory root, in which case
// the entry a server would restore is inspected.
func InspectCheckpoint(path string, opts InspectOptions) (CheckpointInfo, []CheckpointItem, error) {
	switch {
	case exists(filepath.Join(path, manifestName)):
		return inspectCheckpointDir(path, opts)
	case isPebbleDir(filepath.Join(path, durableMetaName)):
		ci, sc := inspectDurable(path, opts)
		if ci.Err != nil {
			return ci, nil, ci.Err
		}
		return ci, listItems(sc, opts.Items), nil
	}
	if strings.HasSuffix(path, tmpSuffix) {
		return CheckpointInfo{Path: path, Kind: storeKindCheckpoint, Err: errIncomplete}, nil, errIncomplete
	}
	infos, err := ListCheckpoints(path, InspectOptions{Quick: opts.Quick, Logger: opts.Logger})
	if err != nil {
		return CheckpointInfo{}, nil, err
	}
	for _, ci := range infos {
		if ci.Restore {
			opts.Quick = true // ListCheckpoints has just checked its files
			return InspectCheckpoint(ci.Path, opts)
		}
	}
	if len(infos) == 0 {
		return CheckpointInfo{}, nil, fmt.Errorf("no checkpoint in %s", path)
	}
	return CheckpointInfo{}, nil, fmt.Errorf("no usable checkpoint in %s (%s: %s)", path, filepath.Base(infos[0].Path), infos[0].Status())
}

func inspectCheckpointDir(path string, opts InspectOptions) (CheckpointInfo, []CheckpointItem, error) {
	ci := CheckpointInfo{Path: path, Kind: storeKindCheckpoint, Complete: !strings.HasSuffix(path, tmpSuffix), DiskBytes: diskBytes(path)}
	ci.Created, _ = parseCheckpointName(filepath.Base(path))
	fail := func(err error) (CheckpointInfo, []CheckpointItem, error) {
		ci.Err = err
		return ci, nil, err
	}
	m, err := verifyCheckpoint(path, opts.Quick)
	if err != nil {
		return fail(err)
	}
	ci.fromManifest(m)
	db, err := openStoreReadOnly(filepath.Join(path, storeDirName), opts.logger())
	if err != nil {
		return fail(corruptf("cannot open the store: %v", err))
	}
	defer db.Close()
	sc, err := readStore(context.Background(), db, false, nil)
	if err != nil {
		return fail(err)
	}
	ci.fromContents(sc)
	return ci, listItems(sc, opts.Items), nil
}

func listItems(sc *storeContents, n int) []CheckpointItem {
	var out []CheckpointItem
	for _, t := range sc.tables {
		for i, it := range t.items {
			if n >= 0 && i >= n {
				break
			}
			out = append(out, CheckpointItem{
				Table: t.opts.Name, Key: it.key, Priority: it.pri.Priority, TimesSampled: it.pri.TimesSampled,
				InsertedAt: time.Unix(0, it.rec.InsertedAt), ChunkKeys: trajectoryChunkKeys(it.rec.Trajectory),
			})
		}
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// isPebbleDir reports whether p looks like a Pebble store.
func isPebbleDir(p string) bool {
	ents, err := os.ReadDir(p)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "MANIFEST-") || strings.HasPrefix(e.Name(), "marker.manifest") {
			return true
		}
	}
	return false
}

func diskBytes(p string) int64 {
	var n int64
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
