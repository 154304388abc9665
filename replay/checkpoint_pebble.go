package replay

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/recall-rl/recall/table"
)

// This file holds what checkpoints and the durable store share: Pebble
// options, the logger adapter, a size-bounded batch writer and the reader
// that turns a store back into tables.

// pebbleLogger sends Pebble's messages to slog: informational ones at debug
// level (Pebble is chatty about WAL replay and compactions), errors as
// warnings. Fatalf logs and panics; Pebble calls it only for invariant
// violations.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Warn("pebble: " + strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + strings.TrimSpace(fmt.Sprintf(format, args...))
	l.log.Error(msg)
	panic(msg)
}

// storeUse says what a Pebble DB is opened for.
type storeUse int

const (
	useCheckpointWrite storeUse = iota // written once, WAL off, flushed at the end
	useDurable                         // the live durable store
	useRead                            // read-only: loading or inspecting
)

// pebbleOptions returns the options for a store. Chunk data is compressed by
// clients, so Pebble does not compress; large values go to blob files in
// the durable store so that compactions do not rewrite them.
func pebbleOptions(log *slog.Logger, use storeUse, co CheckpointOptions) *pebble.Options {
	o := &pebble.Options{
		Logger:             pebbleLogger{log: log},
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       64 << 20,
	}
	o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	o.Experimental.EnableColumnarBlocks = func() bool { return true }
	switch use {
	case useCheckpointWrite:
		o.DisableWAL = true
		o.DisableAutomaticCompactions = true
		o.MemTableStopWritesThreshold = 4
		o.L0CompactionThreshold = 1 << 20
		o.L0StopWritesThreshold = 1 << 20
	case useDurable:
		o.MemTableStopWritesThreshold = 4
		o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
			return pebble.ValueSeparationPolicy{
				Enabled:               true,
				MinimumSize:           512,
				MaxBlobReferenceDepth: 10,
				RewriteMinimumAge:     time.Minute,
				TargetGarbageRatio:    0.3,
			}
		}
		if co.SyncInterval > 0 {
			o.WALMinSyncInterval = func() time.Duration { return co.SyncInterval }
		}
		if co.NoFsync {
			o.FS = walNoSyncFS{vfs.Default}
		}
	case useRead:
		o.ReadOnly = true
	}
	return o
}

// batchWriter applies records in batches of about batchBytes, so that a
// store of any size is written with bounded memory.
type batchWriter struct {
	db    *pebble.DB
	b     *pebble.Batch
	sync  *pebble.WriteOptions
	limit int
	bulk  bool
	err   error
	// beforeApply, if set, runs before each batch is applied (durable
	// mode syncs the chunk log appends the batch points at).
	beforeApply func() error
}

const checkpointBatchBytes = 32 << 20

func newBatchWriter(db *pebble.DB, opts *pebble.WriteOptions) *batchWriter {
	return &batchWriter{db: db, b: db.NewBatch(), sync: opts, limit: checkpointBatchBytes}
}

// newBulkWriter is a batchWriter for writing a whole store: its batches are
// allocated at their full size once (growing one by doubling copies it
// over and over).
func newBulkWriter(db *pebble.DB) *batchWriter {
	return &batchWriter{db: db, b: db.NewBatchWithSize(checkpointBatchBytes + 1<<20), sync: pebble.NoSync, limit: checkpointBatchBytes, bulk: true}
}

func (w *batchWriter) set(key, value []byte) {
	if w.err == nil {
		w.err = w.b.Set(key, value, nil)
	}
}

func (w *batchWriter) del(key []byte) {
	if w.err == nil {
		w.err = w.b.Delete(key, nil)
	}
}

func (w *batchWriter) delRange(lo, hi []byte) {
	if w.err == nil {
		w.err = w.b.DeleteRange(lo, hi, nil)
	}
}

// setChunk writes a chunk record without building the value separately.
func (w *batchWriter) setChunk(c *table.Chunk) {
	if w.err != nil {
		return
	}
	var hdr [128]byte
	h := appendChunkHeader(hdr[:0], c)
	op := w.b.SetDeferred(9, len(h)+len(c.Data))
	op.Key[0] = prefixChunk
	binary.BigEndian.PutUint64(op.Key[1:], c.Key)
	copy(op.Value, h)
	copy(op.Value[len(h):], c.Data)
	w.err = op.Finish()
}

// maybeFlush applies the batch once it has grown past the limit. Call it
// only between groups of records that may be applied separately.
func (w *batchWriter) maybeFlush() {
	if w.err == nil && w.b.Len() >= w.limit {
		w.flush()
	}
}

func (w *batchWriter) flush() {
	if w.err != nil || w.b.Empty() {
		return
	}
	if w.beforeApply != nil {
		if w.err = w.beforeApply(); w.err != nil {
			return
		}
	}
	if err := w.db.Apply(w.b, w.sync); err != nil {
		w.err = err
		return
	}
	_ = w.b.Close() // recycles the batch
	if w.bulk {
		w.b = w.db.NewBatchWithSize(w.limit + 1<<20)
	} else {
		w.b = w.db.NewBatch()
	}
}

// finish applies what is left and returns the first error.
func (w *batchWriter) finish() error {
	w.flush()
	_ = w.b.Close()
	return w.err
}

// storedTable is a table read from a store.
type storedTable struct {
	id    uint32
	opts  table.Options
	state tableState
	// items in insertion order (by sequence number).
	items []storedItem
}

type storedItem struct {
	key    uint64
	rec    itemRecord
	pri    priorityRecord
	chunks []*table.Chunk
}

// storeContents is everything a store holds.
type storeContents struct {
	meta   metaRecord
	asOf   time.Time // durable stores only
	tables []*storedTable
	chunks map[uint64]*table.Chunk
	locs   map[uint64]chunkLoc // durable stores: where each chunk is in the chunk log
	// orphans are chunks no item uses (a durable store may keep some
	// after a crash; they are deleted when it is next opened).
	orphans    []uint64
	chunkBytes int64
}

func (sc *storeContents) table(name string) *storedTable {
	for _, t := range sc.tables {
		if t.opts.Name == name {
			return t
		}
	}
	return nil
}

// readStore reads and cross-checks a whole store: every item must have
// both its records and every chunk it references. It stops early, with
// ctx's error, if ctx ends.
// Without keepData chunk payloads are not kept (only counted), for
// inspection. A durable store's chunks are read from chunks.
func readStore(ctx context.Context, db *pebble.DB, keepData bool, chunks *chunkLog) (*storeContents, error) {
	it, err := db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	sc := &storeContents{chunks: make(map[uint64]*table.Chunk), locs: make(map[uint64]chunkLoc)}
	type itemKey struct {
		table uint32
		key   uint64
	}
	items := make(map[itemKey]*storedItem)
	byID := make(map[uint32]*storedTable)
	states := make(map[uint32]tableState)
	var haveMeta bool
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		if len(k) == 0 {
			return nil, corruptf("empty key")
		}
		switch k[0] {
		case prefixAsOf:
			if sc.asOf, err = decodeAsOf(v); err != nil {
				return nil, err
			}
		case prefixMeta:
			if err := json.Unmarshal(v, &sc.meta); err != nil {
				return nil, corruptf("meta record: %v", err)
			}
			haveMeta = true
		case prefixChunk:
			if len(k) != 9 {
				return nil, corruptf("chunk key of %d bytes", len(k))
			}
			key := binary.BigEndian.Uint64(k[1:])
			c, n, err := decodeChunk(key, v, keepData)
			if err != nil {
				return nil, fmt.Errorf("chunk %d: %w", key, err)
			}
			sc.chunks[key] = c
			sc.chunkBytes += int64(n)
		case prefixPointer:
			if len(k) != 9 || chunks == nil {
				return nil, corruptf("chunk pointer record %q outside a durable store", k)
			}
			key := binary.BigEndian.Uint64(k[1:])
			loc, err := decodeChunkLoc(v)
			if err != nil {
				return nil, fmt.Errorf("chunk %d: %w", key, err)
			}
			c, n, err := chunks.read(key, loc, keepData)
			if err != nil {
				return nil, err
			}
			sc.chunks[key] = c
			sc.locs[key] = loc
			sc.chunkBytes += int64(n)
		case prefixItem, prefixPriority:
			if len(k) != 13 {
				return nil, corruptf("item key of %d bytes", len(k))
			}
			ik := itemKey{binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint64(k[5:])}
			si := items[ik]
			if si == nil {
				si = &storedItem{key: ik.key, pri: priorityRecord{Priority: -1}}
				items[ik] = si
			}
			if k[0] == prefixItem {
				if si.rec, err = decodeItem(v); err != nil {
					return nil, fmt.Errorf("item %d: %w", ik.key, err)
				}
				if si.rec.Trajectory == nil {
					si.rec.Trajectory = []table.TrajectoryColumn{}
				}
			} else if si.pri, err = decodePriority(v); err != nil {
				return nil, fmt.Errorf("item %d: %w", ik.key, err)
			}
		case prefixState:
			if len(k) != 5 {
				return nil, corruptf("table state key of %d bytes", len(k))
			}
			st, err := decodeTableState(v)
			if err != nil {
				return nil, err
			}
			states[binary.BigEndian.Uint32(k[1:])] = st
		case prefixTable:
			var tr tableRecord
			if err := json.Unmarshal(v, &tr); err != nil {
				return nil, corruptf("table record %q: %v", k[1:], err)
			}
			opts, err := tr.Options.options()
			if err != nil {
				return nil, corruptf("table record %q: %v", k[1:], err)
			}
			if opts.Name != string(k[1:]) {
				return nil, corruptf("table record %q names table %q", k[1:], opts.Name)
			}
			if _, dup := byID[tr.ID]; dup {
				return nil, corruptf("two tables have id %d", tr.ID)
			}
			st := &storedTable{id: tr.ID, opts: opts}
			byID[tr.ID] = st
			sc.tables = append(sc.tables, st)
		default:
			return nil, corruptf("unknown record %q", k)
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if !haveMeta {
		return nil, corruptf("no meta record")
	}
	if sc.meta.Format > checkpointFormat || sc.meta.Format < 1 {
		return nil, fmt.Errorf("format version %d is not supported (this server reads up to %d)", sc.meta.Format, checkpointFormat)
	}
	for id, st := range states {
		t := byID[id]
		if t == nil {
			return nil, corruptf("counters of unknown table id %d", id)
		}
		t.state = st
	}
	refs := make(map[uint64]bool, len(sc.chunks))
	for ik, si := range items {
		t := byID[ik.table]
		switch {
		case t == nil:
			return nil, corruptf("item %d belongs to unknown table id %d", ik.key, ik.table)
		case si.rec.Trajectory == nil:
			return nil, corruptf("table %q: item %d has a priority record but no item record", t.opts.Name, ik.key)
		case si.pri.Priority < 0:
			return nil, corruptf("table %q: item %d has no priority record", t.opts.Name, ik.key)
		}
		for _, ck := range trajectoryChunkKeys(si.rec.Trajectory) {
			c := sc.chunks[ck]
			if c == nil {
				return nil, corruptf("table %q: item %d references chunk %d, which is missing", t.opts.Name, ik.key, ck)
			}
			si.chunks = append(si.chunks, c)
			refs[ck] = true
		}
		t.items = append(t.items, *si)
	}
	for k := range sc.chunks {
		if !refs[k] {
			sc.orphans = append(sc.orphans, k)
		}
	}
	slices.Sort(sc.orphans)
	for _, t := range sc.tables {
		slices.SortFunc(t.items, func(a, b storedItem) int { return cmp.Compare(a.rec.Seq, b.rec.Seq) })
	}
	// Table ids follow the config order the tables were captured in.
	slices.SortFunc(sc.tables, func(a, b *storedTable) int { return cmp.Compare(a.id, b.id) })
	return sc, nil
}

// snapshot converts a stored table into a table snapshot for Restore.
func (t *storedTable) snapshot() *table.Snapshot {
	s := &table.Snapshot{
		Options:            t.opts,
		Items:              make([]table.SnapshotItem, len(t.items)),
		Limiter:            t.state.Limiter,
		NumDeletedEpisodes: t.state.NumDeletedEpisodes,
		NumUniqueSamples:   t.state.NumUniqueSamples,
	}
	for i, it := range t.items {
		s.Items[i] = table.SnapshotItem{
			Key:          it.key,
			Priority:     it.pri.Priority,
			TimesSampled: it.pri.TimesSampled,
			InsertedAt:   time.Unix(0, it.rec.InsertedAt),
			Trajectory:   it.rec.Trajectory,
			Chunks:       it.chunks,
		}
	}
	return s
}

// walNoSyncFS is the default file system except that the write-ahead
// log's syncs are no-ops: a commit has been written to the operating
// system (write(2)) when it returns, which survives the process being
// killed, but not a machine crash. Other files are synced as usual.
type walNoSyncFS struct{ vfs.FS }

func (fs walNoSyncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return walNoSyncFile{f}, nil
}

func (fs walNoSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs walNoSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

func (fs walNoSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (fs walNoSyncFS) Unwrap() vfs.FS { return fs.FS }

type walNoSyncFile struct{ vfs.File }

func (walNoSyncFile) Sync() error                { return nil }
func (walNoSyncFile) SyncData() error            { return nil }
func (walNoSyncFile) SyncTo(int64) (bool, error) { return true, nil }
