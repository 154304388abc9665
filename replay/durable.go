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
// A live Pebble store under DIR/durable mirrors the tables with the records
// checkpoints use. What the server sees as requests is written before the
// request is acknowledged: each insert request's new chunks and items in one
// batch, each MutatePriorities call's deletes and updates, each Reset. The
// batch is applied under durable.mu, right after the same change was made to
// the table, and the write-ahead log is synced after mu is released, so
// concurrent requests share syncs.
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
	s    *Server
	db   *pebble.DB
	path string
	opts CheckpointOptions
	log  *slog.Logger

	// mu orders table mutations made through the server with their records
	// in the store, and guards the fields below.
	mu        sync.Mutex
	tables    map[string]*durTable
	chunkRefs map[uint64]int32 // chunk key -> items in the store that use it
	mutSeq    uint64           // counts mutations and resets
	nextTok   uint64
	inflight  map[uint64]uint64 // in-flight insert request -> mutSeq at its start
	recent    map[recentKey]recentMut
	// deletedChunks records, while inserts are in flight, the mutSeq at
	// which chunk records were deleted: a request that wrote a chunk
	// before taking mu must write it again if it was deleted since.
	deletedChunks map[uint64]uint64
	pruneAt       int
	failed        error // sticky: the store could not be written
	closed        bool

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

func newDurable(s *Server, db *pebble.DB, path string, opts CheckpointOptions, log *slog.Logger) *durable {
	return &durable{
		s: s, db: db, path: path, opts: opts, log: log,
		tables:    make(map[string]*durTable),
		chunkRefs: make(map[uint64]int32),
		inflight:  make(map[uint64]uint64),
		recent:    make(map[recentKey]recentMut),
		stop:      make(chan struct{}),

		deletedChunks: make(map[uint64]uint64),
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
	db, err := pebble.Open(path, o)
	if err != nil {
		if isLockError(err) {
			return nil, nil, fmt.Errorf("in use by another server: %w", err)
		}
		return nil, nil, corruptf("cannot open: %v", err)
	}
	sc, err := readStore(ctx, db, true)
	if err == nil && sc.meta.Kind != storeKindDurable {
		err = corruptf("store kind %q", sc.meta.Kind)
	}
	if err == nil && sc.asOf.IsZero() {
		err = corruptf("no as-of record")
	}
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return newDurable(s, db, path, opts, log), sc, nil
}

// adopt makes the store, from which the tables were just restored, hold
// exactly their state: table definitions as configured, items trimmed at
// restore deleted, orphaned chunks deleted, counters written.
func (d *durable) adopt(sc *storeContents) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := newBatchWriter(d.db, pebble.NoSync)
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
		w.del(chunkRecordKey(k))
	}
	if err := d.reconcileLocked(w, true); err != nil {
		return err
	}
	w.set(asOfKey, encodeAsOf(time.Now()))
	if err := w.finish(); err != nil {
		return err
	}
	return d.db.LogData(syncMarker, pebble.Sync)
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
	db, err := pebble.Open(tmp, o)
	if err != nil {
		return nil, err
	}
	d := newDurable(s, db, path, opts, log)
	err = func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		w := newBatchWriter(db, pebble.NoSync)
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
	if d.db, err = pebble.Open(path, o); err != nil {
		return nil, err
	}
	return d, nil
}

// start runs the periodic reconcile.
func (d *durable) start() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(d.opts.ReconcileInterval)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				if err := d.reconcile(false); err != nil {
					d.log.Error("durable store: reconcile failed", "err", err)
				}
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
}

// reconcile writes what changed inside the tables since the last time: in
// every table whose counters moved, or in all with force.
func (d *durable) reconcile(force bool) error {
	d.mu.Lock()
	if d.closed || d.failed != nil {
		d.mu.Unlock()
		return d.failed
	}
	w := newBatchWriter(d.db, pebble.NoSync)
	err := d.reconcileLocked(w, force)
	if err == nil && !w.b.Empty() {
		w.set(asOfKey, encodeAsOf(time.Now()))
	}
	empty := w.b.Empty()
	if ferr := w.finish(); err == nil {
		err = ferr
	}
	if err != nil {
		d.failLocked(err)
	}
	d.mu.Unlock()
	if err != nil || empty {
		return err
	}
	return d.sync()
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

// addItemLocked writes a new item and the chunks the store lacks, which
// chunkOf supplies; stored, if not nil, reports chunks no stored item uses
// that are in the store all the same. It writes nothing and returns false
// if a chunk is not available (the item is no longer in any table). d.mu
// must be held.
func (d *durable) addItemLocked(w *batchWriter, dt *durTable, key uint64, pri priorityRecord, insertedAt int64, traj []table.TrajectoryColumn,
	chunkOf func(uint64) *table.Chunk, stored func(uint64) bool) bool {
	keys := trajectoryChunkKeys(traj)
	var need []*table.Chunk
	for _, k := range keys {
		if d.chunkRefs[k] == 0 && (stored == nil || !stored(k)) {
			c := chunkOf(k)
			if c == nil {
				return false
			}
			need = append(need, c)
		}
	}
	for _, c := range need {
		w.setChunk(c)
	}
	for _, k := range keys {
		d.chunkRefs[k]++
		delete(d.deletedChunks, k)
	}
	rec := itemRecord{Seq: dt.state.NextSeq, InsertedAt: insertedAt, Trajectory: traj}
	dt.state.NextSeq++
	w.set(itemRecordKey(prefixItem, dt.id, key), rec.encode())
	w.set(itemRecordKey(prefixPriority, dt.id, key), pri.encode())
	dt.items[key] = &durItem{seq: rec.Seq, insertedAt: insertedAt, priority: pri.Priority, timesSampled: pri.TimesSampled, chunks: keys}
	return true
}

// deleteItemLocked deletes an item and the chunks no other item in the
// store uses. d.mu must be held.
func (d *durable) deleteItemLocked(w *batchWriter, dt *durTable, key uint64, di *durItem) {
	w.del(itemRecordKey(prefixItem, dt.id, key))
	w.del(itemRecordKey(prefixPriority, dt.id, key))
	for _, k := range di.chunks {
		if d.chunkRefs[k]--; d.chunkRefs[k] <= 0 {
			delete(d.chunkRefs, k)
			d.deleteChunkLocked(w, k)
		}
	}
	delete(dt.items, key)
}

// deleteChunkLocked deletes a chunk record, noting when for requests in
// flight. d.mu must be held.
func (d *durable) deleteChunkLocked(w *batchWriter, k uint64) {
	w.del(chunkRecordKey(k))
	if len(d.inflight) > 0 {
		d.mutSeq++
		d.deletedChunks[k] = d.mutSeq
	}
}

func (d *durable) failLocked(err error) {
	if d.failed == nil {
		d.failed = fmt.Errorf("%w: durable store failed (restart the server): %v", ErrUnavailable, err)
		d.log.Error("durable store failed; acknowledgements stop until the server restarts", "err", err)
	}
}

// sync syncs the write-ahead log, covering every batch applied before.
// Concurrent calls share syncs.
func (d *durable) sync() error {
	if err := d.db.LogData(syncMarker, pebble.Sync); err != nil {
		d.mu.Lock()
		d.failLocked(err)
		err = d.failed
		d.mu.Unlock()
		return err
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
	// The chunks this request sent that its inserted items use are written
	// first, in a batch of their own, without mu: chunk records are
	// immutable (a key names its content), so their order relative to
	// other requests' records does not matter, except for a delete of the
	// same chunk, which the commit below detects (deletedChunks).
	pre, perr := d.writeSentChunks(req, len(acked))
	if perr != nil {
		d.mu.Lock()
		delete(d.inflight, tok.id)
		d.failLocked(perr)
		perr = d.failed
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
	if d.failed != nil || d.closed {
		ferr := d.failed
		if ferr == nil {
			ferr = fmt.Errorf("%w: durable store closed", ErrUnavailable)
		}
		d.mu.Unlock()
		return nil, ferr
	}
	w := newBatchWriter(d.db, pebble.NoSync)
	w.limit = math.MaxInt // one batch per request
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
	// stored reports the chunks written before mu was taken and not
	// deleted since.
	stored := func(k uint64) bool {
		if !pre[k] {
			return false
		}
		seq, deleted := d.deletedChunks[k]
		return !deleted || seq <= tok.s0
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
		if d.addItemLocked(w, dt, key, priorityRecord{Priority: priority}, now, ri.trajectory, chunkOf, stored) {
			dt.state.Limiter.Inserts++
		}
	}
	// Chunks written above that no stored item uses (their items were
	// skipped) are deleted again.
	for k := range pre {
		if d.chunkRefs[k] == 0 {
			d.deleteChunkLocked(w, k)
		}
	}
	for dt := range touched {
		w.set(stateRecordKey(dt.id), dt.state.encode())
	}
	w.set(asOfKey, encodeAsOf(time.Now()))
	if ferr := w.finish(); ferr != nil {
		d.failLocked(ferr)
		ferr = d.failed
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

// writeSentChunks writes the chunks sent in req that its first n items
// use, and returns their keys.
func (d *durable) writeSentChunks(req *insertRequest, n int) (map[uint64]bool, error) {
	if n == 0 || len(req.chunks) == 0 {
		return nil, nil
	}
	used := make(map[uint64]bool, len(req.chunks))
	for i := range req.items[:n] {
		for _, col := range req.items[i].trajectory {
			for _, sl := range col.Slices {
				used[sl.ChunkKey] = true
			}
		}
	}
	size := 0
	for _, c := range req.chunks {
		if used[c.Key] {
			size += len(c.Data) + 64 + 16*len(c.Columns)
		}
	}
	if size == 0 {
		return nil, nil
	}
	pre := make(map[uint64]bool, len(req.chunks))
	w := &batchWriter{db: d.db, b: d.db.NewBatch(pebble.WithInitialSizeBytes(size+1024), pebble.WithMaxRetainedSizeBytes(max(size+1024, 1<<20))),
		sync: pebble.NoSync, limit: math.MaxInt}
	for _, c := range req.chunks {
		if used[c.Key] && !pre[c.Key] {
			pre[c.Key] = true
			w.setChunk(c)
		}
	}
	return pre, w.finish()
}

// pruneLocked forgets recent mutations no in-flight insert can conflict
// with. d.mu must be held.
func (d *durable) pruneLocked() {
	if len(d.inflight) == 0 {
		clear(d.recent)
		clear(d.deletedChunks)
		return
	}
	if len(d.recent)+len(d.deletedChunks) < d.pruneAt {
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
	for k, seq := range d.deletedChunks {
		if seq <= low {
			delete(d.deletedChunks, k)
		}
	}
	d.pruneAt = max(1024, 2*(len(d.recent)+len(d.deletedChunks)))
}

// mutatePriorities applies MutatePriorities to a table and, in durable
// mode, to the store before returning.
func (s *Server) mutatePriorities(ctx context.Context, t *table.Table, updates map[uint64]float64, deletes []uint64) error {
	d := s.durable
	if d == nil {
		return t.MutatePriorities(ctx, updates, deletes)
	}
	d.mu.Lock()
	if d.failed != nil || d.closed {
		err := d.failed
		d.mu.Unlock()
		if err == nil {
			err = fmt.Errorf("%w: durable store closed", ErrUnavailable)
		}
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
	w := newBatchWriter(d.db, pebble.NoSync)
	w.limit = math.MaxInt
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
	w.set(asOfKey, encodeAsOf(time.Now()))
	if ferr := w.finish(); ferr != nil {
		d.failLocked(ferr)
		ferr = d.failed
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

// resetTable resets a table and, in durable mode, its records in the store
// before returning.
func (s *Server) resetTable(ctx context.Context, t *table.Table) error {
	d := s.durable
	if d == nil {
		return t.Reset(ctx)
	}
	d.mu.Lock()
	if d.failed != nil || d.closed {
		err := d.failed
		d.mu.Unlock()
		if err == nil {
			err = fmt.Errorf("%w: durable store closed", ErrUnavailable)
		}
		return err
	}
	if err := t.Reset(ctx); err != nil {
		d.mu.Unlock()
		return err
	}
	dt := d.tables[t.Name()]
	w := newBatchWriter(d.db, pebble.NoSync)
	w.limit = math.MaxInt
	for _, di := range dt.items {
		for _, k := range di.chunks {
			if d.chunkRefs[k]--; d.chunkRefs[k] <= 0 {
				delete(d.chunkRefs, k)
				d.deleteChunkLocked(w, k)
			}
		}
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
	w.set(asOfKey, encodeAsOf(time.Now()))
	if ferr := w.finish(); ferr != nil {
		d.failLocked(ferr)
		ferr = d.failed
		d.mu.Unlock()
		return ferr
	}
	d.mu.Unlock()
	return d.sync()
}
