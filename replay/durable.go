package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/recall-rl/recall/table"
)

// Durable mode (see docs/checkpoints.md).
//
// DIR/durable holds a live Pebble store (meta/) that mirrors the tables with
// the records checkpoints use, except that chunk payloads live in the chunk
// log (chunks/, see durable_chunks.go) and Pebble holds pointers to them.
// What the server sees as requests is written before the request is
// acknowledged: each insert request's new chunks (appended to the chunk log
// and synced first) and items, each MutatePriorities call's deletes and
// updates, each Reset. The Pebble batch is applied under durable.mu, right
// after the same change was made to the table, and the write-ahead log is
// synced after mu is released, so concurrent requests share syncs.
//
// Changes the server does not see as requests, made inside tables
// (evictions at max_size, deletes at max_times_sampled, times sampled, the
// limiter's sample count), are written lazily by reconcile, which compares
// table snapshots with what the store holds, every ReconcileInterval and at
// shutdown. After a crash the store may therefore still hold items evicted
// or used up during the last interval; restore evicts any excess over
// max_size again in remover order.
//
// An insert is written after the table took it (so that a failed insert is
// never written), which leaves a window in which a MutatePriorities call
// could delete or update the new key before its insert is written. Such
// mutations are remembered (recent) while inserts are in flight, and the
// insert's commit applies them again after the insert, to the table and to
// the store, so the store never resurrects a deleted item or loses an
// update. A Reset during an in-flight insert is resolved by a snapshot of
// the table at commit time.

// durable is a server's durable store.
type durable struct {
	s      *Server
	db     *pebble.DB
	chunks *chunkLog
	path   string
	opts   CheckpointOptions
	log    *slog.Logger

	// mu orders table mutations made through the server with their records
	// in the store, and guards the fields below.
	mu        sync.Mutex
	tables    map[string]*durTable
	chunkRefs map[uint64]int32    // chunk key -> items in the store that use it
	chunkLocs map[uint64]chunkLoc // chunk key -> its record in the chunk log
	mutSeq    uint64              // counts mutations and resets
	nextTok   uint64
	inflight  map[uint64]uint64 // in-flight insert request -> mutSeq at its start
	recent    map[recentKey]recentMut
	pruneAt   int
	// unsynced holds, per segment, the end of appends made under mu that
	// must be synced before the batch that points at them is applied.
	unsynced map[*segment]int64
	failed   error // sticky: the store could not be written
	closed   bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// durTable is what the store holds for one table.
type durTable struct {
	t        *table.Table
	id       uint32
	items    map[uint64]*durItem
	state    tableState // as written to the store
	resetSeq uint64     // mutSeq of the last reset
	epoch    uint32     // reconcile mark
	dirty    bool       // reconcile even if the counters look unchanged
}

type durItem struct {
	seq          uint64
	insertedAt   int64 // unix nanos
	priority     float64
	timesSampled int32
	mark         uint32
	chunks       []uint64
}

type recentKey struct {
	table uint32
	key   uint64
}

// recentMut is the latest mutation of a key while inserts were in flight.
type recentMut struct {
	seq      uint64
	deleted  bool
	priority float64
}

// durableToken identifies an insert request in flight.
type durableToken struct {
	id uint64
	s0 uint64 // mutSeq when the request started
	// kept holds the chunks the request's items use that earlier requests
	// sent: the stream may release them before the commit looks for them.
	kept map[uint64]*table.Chunk
}

var syncMarker = []byte{0}

func newDurable(s *Server, db *pebble.DB, chunks *chunkLog, path string, opts CheckpointOptions, log *slog.Logger) *durable {
	return &durable{
		s: s, db: db, chunks: chunks, path: path, opts: opts, log: log,
		tables:    make(map[string]*durTable),
		chunkRefs: make(map[uint64]int32),
		chunkLocs: make(map[uint64]chunkLoc),
		inflight:  make(map[uint64]uint64),
		recent:    make(map[recentKey]recentMut),
		unsynced:  make(map[*segment]int64),
		stop:      make(chan struct{}),
	}
}

// openDurable opens an existing durable store, read-write in durable mode
// and read-only otherwise, and reads it whole.
func openDurable(ctx context.Context, path string, opts CheckpointOptions, log *slog.Logger, s *Server) (*durable, *storeContents, error) {
	var o *pebble.Options
	if opts.Durable {
		o = pebbleOptions(log, useDurable, opts)
	} else {
		o = pebbleOptions(log, useRead, CheckpointOptions{})
	}
	o.ErrorIfNotExists = true
	db, err := pebble.Open(filepath.Join(path, durableMetaName), o)
	if err != nil {
		if isLockError(err) {
			return nil, nil, fmt.Errorf("in use by another server: %w", err)
		}
		return nil, nil, corruptf("cannot open: %v", err)
	}
	chunks, err := openChunkLog(filepath.Join(path, chunkLogDirName), !opts.Durable, opts)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	sc, err := readStore(ctx, db, true, chunks)
	if err == nil && sc.meta.Kind != storeKindDurable {
		err = corruptf("store kind %q", sc.meta.Kind)
	}
	if err == nil && sc.asOf.IsZero() {
		err = corruptf("no as-of record")
	}
	if err != nil {
		db.Close()
		chunks.close()
		return nil, nil, err
	}
	return newDurable(s, db, chunks, path, opts, log), sc, nil
}

// adopt makes the store, from which the tables were just restored, hold
// exactly their state: table definitions as configured, items trimmed at
// restore deleted, orphaned chunks deleted, counters written.
func (d *durable) adopt(sc *storeContents) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.writer(checkpointBatchBytes)
	var maxID uint32
	for _, st := range sc.tables {
		maxID = max(maxID, st.id)
	}
	for _, name := range d.s.names {
		dt := &durTable{t: d.s.tables[name], items: make(map[uint64]*durItem)}
		if st := sc.table(name); st != nil {
			dt.id, dt.state = st.id, st.state
			for _, it := range st.items {
				keys := trajectoryChunkKeys(it.rec.Trajectory)
				dt.items[it.key] = &durItem{seq: it.rec.Seq, insertedAt: it.rec.InsertedAt, priority: it.pri.Priority, timesSampled: it.pri.TimesSampled, chunks: keys}
				for _, k := range keys {
					if d.chunkRefs[k] == 0 {
						d.useLocLocked(k, sc.locs[k])
					}
					d.chunkRefs[k]++
				}
				dt.state.NextSeq = max(dt.state.NextSeq, it.rec.Seq+1)
			}
		} else {
			maxID++
			dt.id = maxID
		}
		w.set(tableRecordKey(name), marshalJSON(tableRecord{ID: dt.id, Options: toOptionsRecord(dt.t.Options())}))
		d.tables[name] = dt
	}
	for _, k := range sc.orphans {
		w.del(pointerRecordKey(k))
	}
	if err := d.reconcileLocked(w, true); err != nil {
		return err
	}
	w.set(asOfKey, encodeAsOf(time.Now()))
	if err := w.finish(); err != nil {
		return err
	}
	if err := d.db.LogData(syncMarker, pebble.Sync); err != nil {
		return err
	}
	return d.collectSegmentsLocked()
}

// rebuildDurable writes the tables' current state as a new durable store at
// path, replacing any store there: it is written beside it (path.tmp) with
// the write-ahead log off, flushed, and renamed into place.
func rebuildDurable(ctx context.Context, path string, opts CheckpointOptions, log *slog.Logger, s *Server) (*durable, error) {
	tmp := path + tmpSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	o := pebbleOptions(log, useDurable, CheckpointOptions{})
	o.DisableWAL = true
	o.ErrorIfExists = true
	db, err := pebble.Open(filepath.Join(tmp, durableMetaName), o)
	if err != nil {
		return nil, err
	}
	// Synced once, with the directory, before the rename.
	chunks, err := openChunkLog(filepath.Join(tmp, chunkLogDirName), false, CheckpointOptions{NoFsync: true})
	if err != nil {
		db.Close()
		return nil, err
	}
	d := newDurable(s, db, chunks, path, opts, log)
	err = func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		w := d.writer(checkpointBatchBytes)
		now := time.Now()
		w.set(metaKey, marshalJSON(metaRecord{Format: checkpointFormat, Kind: storeKindDurable, Created: now.UTC(), ServerVersion: Version}))
		for i, name := range s.names {
			dt := &durTable{t: s.tables[name], id: uint32(i + 1), items: make(map[uint64]*durItem)}
			d.tables[name] = dt
			w.set(tableRecordKey(name), marshalJSON(tableRecord{ID: dt.id, Options: toOptionsRecord(dt.t.Options())}))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.reconcileLocked(w, true); err != nil {
			return err
		}
		w.set(asOfKey, encodeAsOf(now))
		if err := w.finish(); err != nil {
			return err
		}
		return db.Flush()
	}()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = chunks.syncAll()
	}
	chunks.close()
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.RemoveAll(path); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	o = pebbleOptions(log, useDurable, opts)
	o.ErrorIfNotExists = true
	if d.db, err = pebble.Open(filepath.Join(path, durableMetaName), o); err != nil {
		return nil, err
	}
	if d.chunks, err = openChunkLog(filepath.Join(path, chunkLogDirName), false, opts); err != nil {
		d.db.Close()
		return nil, err
	}
	d.unsynced = make(map[*segment]int64)
	// The locations recorded during the rebuild name the same segments.
	for k, loc := range d.chunkLocs {
		d.chunkLocs[k] = chunkLoc{}
		d.useLocLocked(k, loc)
	}
	return d, nil
}

// reconcileBudget bounds the time spent reconciling: the wait before the
// next reconcile is at least this many times the last one's duration (a
// reconcile of a million items takes a few hundred milliseconds, mostly the
// table snapshot).
const reconcileBudget = 20

// start runs the periodic reconcile.
func (d *durable) start() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		wait := d.opts.ReconcileInterval
		for {
			t := time.NewTimer(wait)
			select {
			case <-d.stop:
				t.Stop()
				return
			case <-t.C:
			}
			start := time.Now()
			if err := d.reconcile(false); err != nil {
				d.log.Error("durable store: reconcile failed", "err", err)
			}
			took := time.Since(start)
			wait = max(d.opts.ReconcileInterval, reconcileBudget*took)
			if took > time.Second {
				d.log.Info("durable store: reconcile is slow; reconciling less often", "took", took, "next_in", wait)
			}
		}
	}()
}

// close stops the periodic reconcile and closes the store, after a last
// reconcile when final is set (a clean shutdown leaves the store exact).
func (d *durable) close(final bool) {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.wg.Wait()
	if final {
		if err := d.reconcile(true); err != nil {
			d.log.Error("durable store: final reconcile failed", "err", err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	if err := d.db.Close(); err != nil {
		d.log.Error("durable store: close failed", "err", err)
	}
	d.chunks.close()
}

// reconcile writes what changed inside the tables since the last time: in
// every table whose counters moved, or in all with force.
func (d *durable) reconcile(force bool) error {
	d.mu.Lock()
	if d.closed || d.failed != nil {
		d.mu.Unlock()
		return d.failed
	}
	w := d.writer(checkpointBatchBytes)
	err := d.reconcileLocked(w, force)
	if err == nil && !w.b.Empty() {
		w.set(asOfKey, encodeAsOf(time.Now()))
	}
	if ferr := w.finish(); err == nil {
		err = ferr
	}
	if err == nil {
		err = d.db.LogData(syncMarker, pebble.Sync)
	}
	if err == nil {
		err = d.collectSegmentsLocked()
	}
	if err != nil {
		d.failLocked(err)
	}
	d.mu.Unlock()
	return err
}

// reconcileLocked compares each table (each one whose counters changed,
// or all with force) with the store and writes the differences to w.
// d.mu must be held.
func (d *durable) reconcileLocked(w *batchWriter, force bool) error {
	for _, name := range d.s.names {
		dt := d.tables[name]
		if !force && !dt.dirty {
			in := dt.t.Info()
			if in.Closed || (in.Limiter == dt.state.Limiter && in.NumUniqueSamples == dt.state.NumUniqueSamples &&
				in.NumDeletedEpisodes == dt.state.NumDeletedEpisodes && in.Size == int64(len(dt.items))) {
				continue
			}
		}
		snap, err := dt.t.Snapshot()
		if errors.Is(err, table.ErrClosed) {
			continue
		}
		if err != nil {
			return err
		}
		dt.epoch++
		for i := range snap.Items {
			it := &snap.Items[i]
			di := dt.items[it.Key]
			if di == nil {
				chunks := it.Chunks
				d.addItemLocked(w, dt, it.Key, priorityRecord{Priority: it.Priority, TimesSampled: it.TimesSampled}, it.InsertedAt.UnixNano(), it.Trajectory,
					func(k uint64) *table.Chunk {
						for _, c := range chunks {
							if c.Key == k {
								return c
							}
						}
						return nil
					}, nil)
				if di = dt.items[it.Key]; di != nil {
					di.mark = dt.epoch
				}
				w.maybeFlush()
				continue
			}
			di.mark = dt.epoch
			if at := it.InsertedAt.UnixNano(); di.insertedAt != at {
				// Commits record their own time; the table's is exact.
				di.insertedAt = at
				rec := itemRecord{Seq: di.seq, InsertedAt: at, Trajectory: it.Trajectory}
				w.set(itemRecordKey(prefixItem, dt.id, it.Key), rec.encode())
			}
			if di.priority != it.Priority || di.timesSampled != it.TimesSampled {
				di.priority, di.timesSampled = it.Priority, it.TimesSampled
				w.set(itemRecordKey(prefixPriority, dt.id, it.Key), priorityRecord{Priority: di.priority, TimesSampled: di.timesSampled}.encode())
			}
		}
		for key, di := range dt.items {
			if di.mark != dt.epoch {
				d.deleteItemLocked(w, dt, key, di)
			}
		}
		dt.state.Limiter = snap.Limiter
		dt.state.NumDeletedEpisodes = snap.NumDeletedEpisodes
		dt.state.NumUniqueSamples = snap.NumUniqueSamples
		w.set(stateRecordKey(dt.id), dt.state.encode())
		dt.dirty = false
		if w.err != nil {
			return w.err
		}
	}
	return nil
}

// addItemLocked writes a new item and points at the chunks the store
// lacks: written before mu was taken (pre), or appended now from chunkOf.
// It writes nothing and returns false if a chunk is not available (the
// item is no longer in any table). d.mu must be held.
func (d *durable) addItemLocked(w *batchWriter, dt *durTable, key uint64, pri priorityRecord, insertedAt int64, traj []table.TrajectoryColumn,
	chunkOf func(uint64) *table.Chunk, pre map[uint64]chunkLoc) bool {
	keys := trajectoryChunkKeys(traj)
	var need []*table.Chunk
	for _, k := range keys {
		if d.chunkRefs[k] == 0 {
			if _, ok := pre[k]; ok {
				continue
			}
			c := chunkOf(k)
			if c == nil {
				return false
			}
			need = append(need, c)
		}
	}
	if len(need) > 0 {
		locs, seg, end, err := d.chunks.append(need)
		if err != nil {
			w.err = err
			return false
		}
		seg.pending.Add(-int64(len(need)))
		d.unsynced[seg] = max(d.unsynced[seg], end)
		for i, c := range need {
			d.setPointerLocked(w, c.Key, locs[i])
		}
	}
	for _, k := range keys {
		if d.chunkRefs[k] == 0 {
			if loc, ok := pre[k]; ok {
				d.setPointerLocked(w, k, loc)
			}
		}
		d.chunkRefs[k]++
	}
	rec := itemRecord{Seq: dt.state.NextSeq, InsertedAt: insertedAt, Trajectory: traj}
	dt.state.NextSeq++
	w.set(itemRecordKey(prefixItem, dt.id, key), rec.encode())
	w.set(itemRecordKey(prefixPriority, dt.id, key), pri.encode())
	dt.items[key] = &durItem{seq: rec.Seq, insertedAt: insertedAt, priority: pri.Priority, timesSampled: pri.TimesSampled, chunks: keys}
	return true
}

// setPointerLocked points chunk k at loc. d.mu must be held.
func (d *durable) setPointerLocked(w *batchWriter, k uint64, loc chunkLoc) {
	w.set(pointerRecordKey(k), loc.encode())
	d.useLocLocked(k, loc)
}

// useLocLocked records that chunk k's live record is at loc, moving its
// live bytes from wherever it was. d.mu must be held.
func (d *durable) useLocLocked(k uint64, loc chunkLoc) {
	if old, ok := d.chunkLocs[k]; ok && old.n > 0 {
		if seg := d.segment(old.seg); seg != nil {
			seg.live -= int64(old.n)
		}
	}
	d.chunkLocs[k] = loc
	if seg := d.segment(loc.seg); seg != nil {
		seg.live += int64(loc.n)
	}
}

func (d *durable) segment(id uint32) *segment {
	d.chunks.mu.Lock()
	defer d.chunks.mu.Unlock()
	return d.chunks.segs[id]
}

// writer returns a batch writer whose batches are applied only after the
// chunk log appends they point at are synced. One batch per call when
// limit is 0. d.mu must be held while it is used.
func (d *durable) writer(limit int) *batchWriter {
	w := newBatchWriter(d.db, pebble.NoSync)
	if limit == 0 {
		limit = math.MaxInt
	}
	w.limit = limit
	w.beforeApply = d.syncAppendsLocked
	return w
}

// syncAppendsLocked syncs the chunk log appends made under mu. d.mu must be
// held.
func (d *durable) syncAppendsLocked() error {
	for seg, end := range d.unsynced {
		if err := seg.sync(end, d.chunks.noSync, 0); err != nil {
			return err
		}
		delete(d.unsynced, seg)
	}
	return nil
}

// collectSegmentsLocked deletes sealed segments no pointer uses and
// rewrites those mostly unused: their live chunks are appended again and
// the pointers moved. The pointer deletions must be synced before. d.mu
// must be held.
func (d *durable) collectSegmentsLocked() error {
	var sparse []*segment
	for _, seg := range d.chunks.sealedSegments() {
		switch size := seg.size.Load(); {
		case seg.pending.Load() > 0:
		case seg.live <= 0:
			if err := d.chunks.remove(seg.id); err != nil {
				return err
			}
		case seg.live*segmentLiveRatio < size && size >= 1<<20:
			sparse = append(sparse, seg)
		}
	}
	if len(sparse) == 0 {
		return nil
	}
	move := make(map[uint32]bool, len(sparse))
	for _, seg := range sparse {
		move[seg.id] = true
	}
	w := d.writer(0)
	var batch []*table.Chunk
	var keys []uint64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		locs, seg, end, err := d.chunks.append(batch)
		if err != nil {
			return err
		}
		seg.pending.Add(-int64(len(batch)))
		if err := seg.sync(end, d.chunks.noSync, 0); err != nil {
			return err
		}
		for i, k := range keys {
			d.setPointerLocked(w, k, locs[i])
		}
		batch, keys = batch[:0], keys[:0]
		return nil
	}
	size := 0
	for k, loc := range d.chunkLocs {
		if !move[loc.seg] {
			continue
		}
		c, _, err := d.chunks.read(k, loc, true)
		if err != nil {
			return err
		}
		batch, keys = append(batch, c), append(keys, k)
		if size += len(c.Data); size >= 8<<20 {
			if err := flush(); err != nil {
				return err
			}
			size = 0
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := w.finish(); err != nil {
		return err
	}
	if err := d.db.LogData(syncMarker, pebble.Sync); err != nil {
		return err
	}
	for _, seg := range sparse {
		if seg.live <= 0 && seg.pending.Load() == 0 {
			if err := d.chunks.remove(seg.id); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteItemLocked deletes an item and the chunks no other item in the
// store uses. d.mu must be held.
func (d *durable) deleteItemLocked(w *batchWriter, dt *durTable, key uint64, di *durItem) {
	w.del(itemRecordKey(prefixItem, dt.id, key))
	w.del(itemRecordKey(prefixPriority, dt.id, key))
	d.unrefChunksLocked(w, di.chunks)
	delete(dt.items, key)
}

// unrefChunksLocked drops one store reference to each chunk in keys (an
// item's chunks) and deletes those no item uses any more. d.mu must be
// held.
func (d *durable) unrefChunksLocked(w *batchWriter, keys []uint64) {
	for _, k := range keys {
		if d.chunkRefs[k]--; d.chunkRefs[k] <= 0 {
			delete(d.chunkRefs, k)
			d.deleteChunkLocked(w, k)
		}
	}
}

// deleteChunkLocked deletes a chunk's pointer; its record in the chunk log
// becomes garbage. d.mu must be held.
func (d *durable) deleteChunkLocked(w *batchWriter, k uint64) {
	w.del(pointerRecordKey(k))
	if loc, ok := d.chunkLocs[k]; ok {
		if seg := d.segment(loc.seg); seg != nil {
			seg.live -= int64(loc.n)
		}
		delete(d.chunkLocs, k)
	}
}

// failLocked makes err the store's sticky failure (unless it already
// failed) and returns the sticky error. d.mu must be held.
func (d *durable) failLocked(err error) error {
	if d.failed == nil {
		d.failed = fmt.Errorf("%w: durable store failed (restart the server): %v", ErrUnavailable, err)
		d.log.Error("durable store failed; acknowledgements stop until the server restarts", "err", err)
	}
	return d.failed
}

// usableLocked returns why the store can take no more writes (it failed
// or is closed), or nil. d.mu must be held.
func (d *durable) usableLocked() error {
	switch {
	case d.failed != nil:
		return d.failed
	case d.closed:
		return fmt.Errorf("%w: durable store closed", ErrUnavailable)
	}
	return nil
}

// sync syncs the write-ahead log, covering every batch applied before.
// Concurrent calls share syncs.
func (d *durable) sync() error {
	if err := d.db.LogData(syncMarker, pebble.Sync); err != nil {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.failLocked(err)
	}
	return nil
}

// markAsOfLocked records that the store describes the tables as of t (a
// checkpoint captured them at t). d.mu must be held.
func (d *durable) markAsOfLocked(t time.Time) {
	if d.closed || d.failed != nil {
		return
	}
	if err := d.db.Set(asOfKey, encodeAsOf(t), pebble.NoSync); err != nil {
		d.failLocked(err)
	}
}

// begin registers an insert request before its items go into tables, and
// notes the chunks its items use that the stream holds from earlier
// requests (pending).
func (d *durable) begin(req *insertRequest, pending map[uint64]*table.ChunkRef) durableToken {
	var tok durableToken
	if len(req.items) > 0 {
		sent := make(map[uint64]bool, len(req.chunks))
		for _, c := range req.chunks {
			sent[c.Key] = true
		}
		for i := range req.items {
			for _, col := range req.items[i].trajectory {
				for _, sl := range col.Slices {
					if sent[sl.ChunkKey] {
						continue
					}
					if r, ok := pending[sl.ChunkKey]; ok {
						if tok.kept == nil {
							tok.kept = make(map[uint64]*table.Chunk)
						}
						tok.kept[sl.ChunkKey] = r.Chunk()
					}
				}
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextTok++
	tok.id, tok.s0 = d.nextTok, d.mutSeq
	d.inflight[tok.id] = tok.s0
	return tok
}

// commitInsert writes the items of req that were inserted (acked, a prefix
// of req.items) and the chunks they use, syncs, and returns acked and err
// unchanged; if the store cannot be written it returns no keys (nothing is
// acknowledged) and the error.
func (d *durable) commitInsert(tok durableToken, req *insertRequest, acked []uint64, err error) ([]uint64, error) {
	// The chunks this request sent that its inserted items use are
	// appended to the chunk log and synced first, without mu; the pointers
	// to them are written under mu.
	pre, preSeg, perr := d.writeSentChunks(req, len(acked))
	if preSeg != nil {
		defer preSeg.pending.Add(-int64(len(pre)))
	}
	if perr != nil {
		d.mu.Lock()
		delete(d.inflight, tok.id)
		perr = d.failLocked(perr)
		d.mu.Unlock()
		return nil, perr
	}
	d.mu.Lock()
	delete(d.inflight, tok.id)
	if len(acked) == 0 {
		d.pruneLocked()
		d.mu.Unlock()
		return acked, err
	}
	if uerr := d.usableLocked(); uerr != nil {
		d.mu.Unlock()
		return nil, uerr
	}
	w := d.writer(0) // one batch per request
	var reqChunks map[uint64]*table.Chunk
	chunkOf := func(k uint64) *table.Chunk {
		if reqChunks == nil {
			reqChunks = make(map[uint64]*table.Chunk, len(req.chunks))
			for _, c := range req.chunks {
				reqChunks[c.Key] = c
			}
		}
		if c := reqChunks[k]; c != nil {
			return c
		}
		return tok.kept[k]
	}
	var afterReset map[*durTable]map[uint64]float64
	touched := make(map[*durTable]bool, 1)
	now := time.Now().UnixNano()
	bg := context.Background()
	for j, key := range acked {
		ri := &req.items[j]
		dt := d.tables[ri.table]
		if dt == nil {
			continue
		}
		touched[dt] = true
		priority := ri.priority
		if dt.resetSeq > tok.s0 {
			// The table was reset while this request was inserting: it has
			// the item only if the insert came after the reset.
			if afterReset == nil {
				afterReset = make(map[*durTable]map[uint64]float64)
			}
			present, ok := afterReset[dt]
			if !ok {
				present = make(map[uint64]float64)
				if snap, serr := dt.t.Snapshot(); serr == nil {
					for _, it := range snap.Items {
						present[it.Key] = it.Priority
					}
				}
				afterReset[dt] = present
			}
			p, ok := present[key]
			if !ok {
				continue
			}
			priority = p
		}
		if m, ok := d.recent[recentKey{dt.id, key}]; ok && m.seq > tok.s0 && m.seq > dt.resetSeq {
			// A mutation of this key ran while it was being inserted;
			// whichever came first in the table, it takes effect after the
			// insert, in the table and in the store.
			if m.deleted {
				_ = dt.t.MutatePriorities(bg, nil, []uint64{key})
				if di := dt.items[key]; di != nil {
					d.deleteItemLocked(w, dt, key, di)
					dt.state.Limiter.Deletes++
				}
				continue
			}
			_ = dt.t.MutatePriorities(bg, map[uint64]float64{key: m.priority}, nil)
			priority = m.priority
		}
		if di := dt.items[key]; di != nil {
			if di.priority != priority {
				di.priority = priority
				w.set(itemRecordKey(prefixPriority, dt.id, key), priorityRecord{Priority: priority, TimesSampled: di.timesSampled}.encode())
			}
			continue
		}
		if d.addItemLocked(w, dt, key, priorityRecord{Priority: priority}, now, ri.trajectory, chunkOf, pre) {
			dt.state.Limiter.Inserts++
		}
	}
	for dt := range touched {
		w.set(stateRecordKey(dt.id), dt.state.encode())
	}
	if ferr := d.commitLocked(w); ferr != nil {
		d.mu.Unlock()
		return nil, ferr
	}
	d.pruneLocked()
	d.mu.Unlock()
	if serr := d.sync(); serr != nil {
		return nil, serr
	}
	return acked, err
}

// writeSentChunks appends the chunks sent in req that its first n items
// use to the chunk log, syncs them, and returns their locations and the
// segment (whose pending count the caller releases).
func (d *durable) writeSentChunks(req *insertRequest, n int) (map[uint64]chunkLoc, *segment, error) {
	if n == 0 || len(req.chunks) == 0 {
		return nil, nil, nil
	}
	used := make(map[uint64]bool, len(req.chunks))
	for i := range req.items[:n] {
		for _, col := range req.items[i].trajectory {
			for _, sl := range col.Slices {
				used[sl.ChunkKey] = true
			}
		}
	}
	var chunks []*table.Chunk
	for _, c := range req.chunks {
		if used[c.Key] {
			used[c.Key] = false // once
			chunks = append(chunks, c)
		}
	}
	if len(chunks) == 0 {
		return nil, nil, nil
	}
	locs, seg, end, err := d.chunks.append(chunks)
	if err != nil {
		return nil, nil, err
	}
	pre := make(map[uint64]chunkLoc, len(chunks))
	for i, c := range chunks {
		pre[c.Key] = locs[i]
	}
	if err := seg.sync(end, d.chunks.noSync, d.opts.SyncInterval); err != nil {
		return pre, seg, err
	}
	return pre, seg, nil
}

// pruneLocked forgets recent mutations no in-flight insert can conflict
// with. d.mu must be held.
func (d *durable) pruneLocked() {
	if len(d.inflight) == 0 {
		clear(d.recent)
		return
	}
	if len(d.recent) < d.pruneAt {
		return
	}
	low := uint64(math.MaxUint64)
	for _, s0 := range d.inflight {
		low = min(low, s0)
	}
	for k, m := range d.recent {
		if m.seq <= low {
			delete(d.recent, k)
		}
	}
	d.pruneAt = max(1024, 2*len(d.recent))
}

// mutatePriorities applies MutatePriorities to a table and, in durable
// mode, to the store before returning.
func (s *Server) mutatePriorities(ctx context.Context, t *table.Table, updates map[uint64]float64, deletes []uint64) error {
	d := s.durable
	if d == nil {
		return t.MutatePriorities(ctx, updates, deletes)
	}
	d.mu.Lock()
	if err := d.usableLocked(); err != nil {
		d.mu.Unlock()
		return err
	}
	err := t.MutatePriorities(ctx, updates, deletes)
	if err != nil && (errors.Is(err, table.ErrInvalidPriority) || errors.Is(err, table.ErrClosed) || ctx.Err() != nil) {
		d.mu.Unlock()
		return err // nothing changed
	}
	dt := d.tables[t.Name()]
	if err != nil {
		dt.dirty = true // partly applied: reconcile finds out what
	}
	w := d.writer(0)
	d.mutSeq++
	track := len(d.inflight) > 0
	var deleted map[uint64]bool
	if len(deletes) > 0 && len(updates) > 0 {
		deleted = make(map[uint64]bool, len(deletes))
	}
	for _, k := range deletes {
		if deleted != nil {
			deleted[k] = true
		}
		if track {
			d.recent[recentKey{dt.id, k}] = recentMut{seq: d.mutSeq, deleted: true}
		}
		if di := dt.items[k]; di != nil {
			d.deleteItemLocked(w, dt, k, di)
			dt.state.Limiter.Deletes++
		}
	}
	if err == nil {
		for k, p := range updates {
			if deleted[k] {
				continue // deleted first, so the update found nothing
			}
			if track {
				d.recent[recentKey{dt.id, k}] = recentMut{seq: d.mutSeq, priority: p}
			}
			if di := dt.items[k]; di != nil && di.priority != p {
				di.priority = p
				w.set(itemRecordKey(prefixPriority, dt.id, k), priorityRecord{Priority: p, TimesSampled: di.timesSampled}.encode())
			}
		}
	}
	w.set(stateRecordKey(dt.id), dt.state.encode())
	if ferr := d.commitLocked(w); ferr != nil {
		d.mu.Unlock()
		return ferr
	}
	d.pruneLocked()
	d.mu.Unlock()
	if serr := d.sync(); serr != nil {
		return serr
	}
	return err
}

// commitLocked stamps a mutation's batch with the time and applies it; if
// that fails the store is marked failed. d.mu must be held.
func (d *durable) commitLocked(w *batchWriter) error {
	w.set(asOfKey, encodeAsOf(time.Now()))
	if err := w.finish(); err != nil {
		return d.failLocked(err)
	}
	return nil
}

// resetTable resets a table and, in durable mode, its records in the store
// before returning.
func (s *Server) resetTable(ctx context.Context, t *table.Table) error {
	d := s.durable
	if d == nil {
		return t.Reset(ctx)
	}
	d.mu.Lock()
	if err := d.usableLocked(); err != nil {
		d.mu.Unlock()
		return err
	}
	if err := t.Reset(ctx); err != nil {
		d.mu.Unlock()
		return err
	}
	dt := d.tables[t.Name()]
	w := d.writer(0)
	for _, di := range dt.items {
		d.unrefChunksLocked(w, di.chunks)
	}
	clear(dt.items)
	for _, p := range []byte{prefixItem, prefixPriority} {
		lo, hi := tablePrefix(p, dt.id)
		w.delRange(lo, hi)
	}
	dt.state = tableState{NextSeq: dt.state.NextSeq}
	d.mutSeq++
	dt.resetSeq = d.mutSeq
	w.set(stateRecordKey(dt.id), dt.state.encode())
	if ferr := d.commitLocked(w); ferr != nil {
		d.mu.Unlock()
		return ferr
	}
	d.mu.Unlock()
	return d.sync()
}
