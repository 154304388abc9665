package replay

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/replay/internal/wire"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// Checkpoints (see docs/checkpoints.md).
//
// A checkpoint is a directory DIR/ckpt-<UTC time> holding a Pebble store
// (db/) written once from table snapshots, and MANIFEST.json listing every
// file of the store with its size and CRC-32C, a summary of the tables, and
// a SHA-256 of the manifest itself. It is written as DIR/ckpt-<time>.tmp,
// synced, and renamed into place, so a checkpoint directory without the
// .tmp suffix is complete; loading verifies every checksum first.

// Defaults for CheckpointOptions.
const (
	DefaultCheckpointKeep    = 3
	DefaultReconcileInterval = 5 * time.Second
)

// CheckpointOptions configure checkpoints and durable mode. With Dir empty
// both are off.
type CheckpointOptions struct {
	// Dir holds the checkpoints (and the durable store). At start the
	// server restores the newest state found there.
	Dir string
	// Interval, when > 0, writes a checkpoint this often.
	Interval time.Duration
	// Keep is the number of complete checkpoints kept; older ones are
	// deleted after each new one. Default DefaultCheckpointKeep.
	Keep int
	// Durable makes every acknowledged insert, priority update, delete
	// and reset reach a Pebble store under Dir/durable (with its write-
	// ahead log synced) before it is acknowledged.
	Durable bool
	// NoFsync, in durable mode, writes the write-ahead log to the operating
	// system before acknowledging but does not fsync it: acknowledged
	// changes survive replayd being killed or crashing, not a machine crash
	// or power loss. It halves the disk writes on the acknowledgement path.
	NoFsync bool
	// SyncInterval, in durable mode, is the least time between two syncs of
	// the write-ahead log: acknowledgements wait up to this long so that
	// more commits share a sync. 0 syncs as soon as possible (commits that
	// arrive during a sync still share the next one).
	SyncInterval time.Duration
	// ReconcileInterval, in durable mode, is how often changes the server
	// does not see as requests (evictions, deletions at max_times_sampled,
	// times sampled, the limiter's sample count) are written to the
	// durable store. Default DefaultReconcileInterval.
	ReconcileInterval time.Duration
}

// ErrCheckpointsOff is returned by WriteCheckpoint (Unimplemented over
// gRPC) on a server without a checkpoint directory.
var ErrCheckpointsOff = fmt.Errorf("%w: checkpoints are off on this server (start it with a checkpoint directory: replayd --checkpoint-dir DIR)", ErrUnimplemented)

// ErrCheckpointConfig is returned (wrapped, with the table and what to do)
// when a checkpoint or durable store does not fit the configured tables,
// for example because it holds a table the config lacks.
var ErrCheckpointConfig = errors.New("replay: checkpoint does not match the table config")

func (o *CheckpointOptions) ensureDefaults() {
	if o.Keep == 0 {
		o.Keep = DefaultCheckpointKeep
	}
	if o.ReconcileInterval == 0 {
		o.ReconcileInterval = DefaultReconcileInterval
	}
}

func (o *CheckpointOptions) validate() error {
	switch {
	case o.Dir == "" && (o.Durable || o.Interval > 0):
		return fmt.Errorf("%w: checkpoint interval and durable mode need a checkpoint directory", ErrInvalidArgument)
	case o.Keep < 1:
		return fmt.Errorf("%w: checkpoints to keep must be >= 1, got %d", ErrInvalidArgument, o.Keep)
	case o.Interval < 0 || o.SyncInterval < 0 || o.ReconcileInterval < 0:
		return fmt.Errorf("%w: negative checkpoint interval", ErrInvalidArgument)
	}
	return nil
}

// Names in a checkpoint directory.
const (
	checkpointPrefix = "ckpt-"
	tmpSuffix        = ".tmp"
	durableName      = "durable"
	manifestName     = "MANIFEST.json"
	lockName         = "LOCK"
	storeDirName     = "db"
	// checkpointTimeLayout names checkpoints so that names sort by time.
	checkpointTimeLayout = "20060102T150405.000000000Z"
)

func checkpointName(t time.Time) string {
	return checkpointPrefix + t.UTC().Format(checkpointTimeLayout)
}

// parseCheckpointName returns the capture time in a checkpoint's name.
func parseCheckpointName(name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, checkpointPrefix)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(checkpointTimeLayout, s)
	return t, err == nil
}

// checkpointer runs a server's checkpoints.
type checkpointer struct {
	s    *Server
	opts CheckpointOptions
	log  *slog.Logger
	lock io.Closer // DIR/LOCK: one server per directory
	// writing serialises checkpoint writes.
	writing sync.Mutex
	stop    chan struct{}
	stopCtx context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	lastMu  sync.Mutex
	last    time.Time // capture time of the newest checkpoint, to keep names unique
}

// openCheckpoints restores the newest state in the checkpoint directory,
// opens the durable store and starts periodic work. NewServer calls it
// once the tables exist.
func (s *Server) openCheckpoints() error {
	o := s.opts.Checkpoint
	o.ensureDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	if o.Dir == "" {
		return nil
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint directory: %w", err)
	}
	lock, err := vfs.Default.Lock(filepath.Join(o.Dir, lockName))
	if err != nil {
		return fmt.Errorf("replay: checkpoint directory %s is in use by another server: %w", o.Dir, err)
	}
	c := &checkpointer{s: s, opts: o, log: s.log.With("component", "checkpoint"), stop: make(chan struct{}), lock: lock}
	c.stopCtx, c.cancel = context.WithCancel(context.Background())
	c.cleanTemporary()
	if err := c.restore(); err != nil {
		c.cancel()
		lock.Close()
		if s.durable != nil {
			s.durable.close(false)
			s.durable = nil
		}
		return err
	}
	s.ckpt = c
	if o.Interval > 0 {
		c.wg.Add(1)
		go c.periodic()
	}
	if s.durable != nil {
		s.durable.start()
	}
	return nil
}

// closeCheckpoints stops periodic work and closes the durable store after
// writing what it has not yet written. Shutdown calls it once no handler
// runs.
func (s *Server) closeCheckpoints() {
	c := s.ckpt
	if c == nil {
		return
	}
	c.cancel()
	close(c.stop)
	c.wg.Wait()
	if s.durable != nil {
		s.durable.close(true)
	}
	c.lock.Close()
}

// cleanTemporary deletes what interrupted writes left: *.tmp entries.
func (c *checkpointer) cleanTemporary() {
	ents, err := os.ReadDir(c.opts.Dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			p := filepath.Join(c.opts.Dir, e.Name())
			c.log.Warn("deleting an incomplete checkpoint left by an interrupted write", "path", p)
			if err := os.RemoveAll(p); err != nil {
				c.log.Warn("cannot delete incomplete checkpoint", "path", p, "err", err)
			}
		}
	}
}

func (c *checkpointer) periodic() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if _, err := c.write(c.stopCtx); err != nil && c.stopCtx.Err() == nil {
				c.log.Error("periodic checkpoint failed", "err", err)
			}
		}
	}
}

// WriteCheckpoint writes a checkpoint of every table and returns its path.
// Each table's lock is held only while its item metadata is copied; the
// data is written afterwards. Checkpoints are written one at a time.
// It returns ErrCheckpointsOff on a server without a checkpoint directory.
func (s *Server) WriteCheckpoint(ctx context.Context) (string, error) {
	if s.ckpt == nil {
		return "", ErrCheckpointsOff
	}
	return s.ckpt.write(ctx)
}

// checkpointRPC serves the Checkpoint RPC.
func (s *Server) checkpointRPC(ctx context.Context) (*flatbuffers.Builder, error) {
	path, err := s.WriteCheckpoint(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	b := flatbuffers.NewBuilder(64 + len(path))
	p := b.CreateString(path)
	wire.CheckpointResponseStart(b)
	wire.CheckpointResponseAddPath(b, p)
	b.Finish(wire.CheckpointResponseEnd(b))
	return b, nil
}

// parseCheckpointResponse returns the path in a CheckpointResponse.
func parseCheckpointResponse(buf []byte) (path string, err error) {
	defer decodeGuard(&err)
	if err := rootOK(buf); err != nil {
		return "", err
	}
	return string(wire.GetRootAsCheckpointResponse(buf, 0).Path()), nil
}

func (c *checkpointer) write(ctx context.Context) (string, error) {
	c.writing.Lock()
	defer c.writing.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.stopCtx, cancel)()

	start := time.Now()
	created, snaps, err := c.s.captureTables()
	if err != nil {
		return "", err
	}
	c.lastMu.Lock()
	if !created.After(c.last) {
		created = c.last.Add(time.Microsecond)
	}
	c.last = created
	c.lastMu.Unlock()
	captured := time.Since(start)
	path, m, err := writeCheckpoint(ctx, c.opts.Dir, created, snaps, c.log)
	if err != nil {
		return "", fmt.Errorf("replay: checkpoint: %w", err)
	}
	items := 0
	for _, t := range m.Tables {
		items += int(t.Items)
	}
	c.log.Info("checkpoint written", "path", path, "tables", len(m.Tables), "items", items,
		"chunks", m.NumChunks, "chunk_bytes", m.ChunkBytes, "capture", captured, "took", time.Since(start))
	c.prune()
	return path, nil
}

// prune deletes complete checkpoints beyond the newest Keep.
func (c *checkpointer) prune() {
	names, err := checkpointNames(c.opts.Dir)
	if err != nil {
		c.log.Warn("cannot list checkpoints", "err", err)
		return
	}
	for _, n := range names[min(len(names), c.opts.Keep):] {
		p := filepath.Join(c.opts.Dir, n)
		if err := os.RemoveAll(p); err != nil {
			c.log.Warn("cannot delete old checkpoint", "path", p, "err", err)
		} else {
			c.log.Debug("deleted old checkpoint", "path", p)
		}
	}
}

// checkpointNames returns the names of complete checkpoints in dir, newest
// first.
func checkpointNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if _, ok := parseCheckpointName(e.Name()); ok && e.IsDir() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	return names, nil
}

// captureTables snapshots every table at one instant (table.SnapshotAll
// holds all their locks while it copies item metadata). In durable mode no
// request commits meanwhile, and the durable store's as-of time is set to
// the capture time: both then describe the same state.
func (s *Server) captureTables() (time.Time, []*table.Snapshot, error) {
	if d := s.durable; d != nil {
		d.mu.Lock()
		defer d.mu.Unlock()
	}
	now := time.Now()
	tables := make([]*table.Table, len(s.names))
	for i, name := range s.names {
		tables[i] = s.tables[name]
	}
	snaps, err := table.SnapshotAll(tables...)
	if err != nil {
		return now, nil, err
	}
	if d := s.durable; d != nil {
		d.markAsOfLocked(now)
	}
	return now, snaps, nil
}

// checkpointManifest is the content of MANIFEST.json.
type checkpointManifest struct {
	Format        int             `json:"format"`
	Created       time.Time       `json:"created"`
	ServerVersion string          `json:"server_version"`
	Tables        []manifestTable `json:"tables"`
	NumChunks     int64           `json:"num_chunks"`
	ChunkBytes    int64           `json:"chunk_bytes"`
	Files         []manifestFile  `json:"files"`
}

type manifestTable struct {
	Options            optionsRecord   `json:"options"`
	Items              int64           `json:"items"`
	Limiter            ratelimit.State `json:"limiter"`
	NumDeletedEpisodes int64           `json:"num_deleted_episodes"`
	NumUniqueSamples   int64           `json:"num_unique_samples"`
}

type manifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C string `json:"crc32c"`
}

// manifestEnvelope is MANIFEST.json: the manifest and the SHA-256 of its
// compact JSON encoding.
type manifestEnvelope struct {
	Manifest json.RawMessage `json:"manifest"`
	SHA256   string          `json:"sha256"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeCheckpoint writes snaps as DIR/ckpt-<created> atomically.
func writeCheckpoint(ctx context.Context, dir string, created time.Time, snaps []*table.Snapshot, log *slog.Logger) (string, *checkpointManifest, error) {
	name := checkpointName(created)
	final := filepath.Join(dir, name)
	tmp := final + tmpSuffix
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", nil, err
	}
	m, err := writeStore(ctx, filepath.Join(tmp, storeDirName), created, snaps, log)
	if err != nil {
		return "", nil, err
	}
	if m.Files, err = checksumFiles(tmp, storeDirName, true); err != nil {
		return "", nil, err
	}
	body := marshalJSON(m)
	sum := sha256.Sum256(body)
	env, err := json.MarshalIndent(manifestEnvelope{Manifest: body, SHA256: hex.EncodeToString(sum[:])}, "", "  ")
	if err != nil {
		return "", nil, err
	}
	if err := writeFileSync(filepath.Join(tmp, manifestName), append(env, '\n')); err != nil {
		return "", nil, err
	}
	if err := syncDir(tmp); err != nil {
		return "", nil, err
	}
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", nil, err
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return "", nil, err
	}
	return final, m, nil
}

// writeStore writes snaps into a new Pebble store at path and returns the
// manifest's summary (without files).
func writeStore(ctx context.Context, path string, created time.Time, snaps []*table.Snapshot, log *slog.Logger) (*checkpointManifest, error) {
	opts := pebbleOptions(log, useCheckpointWrite, CheckpointOptions{})
	opts.ErrorIfExists = true
	db, err := pebble.Open(path, opts)
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			_ = db.Close()
		}
	}()
	m := &checkpointManifest{Format: checkpointFormat, Created: created.UTC(), ServerVersion: Version}
	w := newBulkWriter(db)
	seen := make(map[uint64]bool)
	for i, snap := range snaps {
		id := uint32(i + 1)
		o := snap.Options
		w.set(tableRecordKey(o.Name), marshalJSON(tableRecord{ID: id, Options: toOptionsRecord(o)}))
		st := tableState{Limiter: snap.Limiter, NumDeletedEpisodes: snap.NumDeletedEpisodes, NumUniqueSamples: snap.NumUniqueSamples, NextSeq: uint64(len(snap.Items))}
		w.set(stateRecordKey(id), st.encode())
		m.Tables = append(m.Tables, manifestTable{
			Options: toOptionsRecord(o), Items: int64(len(snap.Items)), Limiter: snap.Limiter,
			NumDeletedEpisodes: snap.NumDeletedEpisodes, NumUniqueSamples: snap.NumUniqueSamples,
		})
		for j := range snap.Items {
			it := &snap.Items[j]
			for _, c := range it.Chunks {
				if !seen[c.Key] {
					seen[c.Key] = true
					w.setChunk(c)
					m.NumChunks++
					m.ChunkBytes += int64(len(c.Data))
				}
			}
			rec := itemRecord{Seq: uint64(j), InsertedAt: it.InsertedAt.UnixNano(), Trajectory: it.Trajectory}
			w.set(itemRecordKey(prefixItem, id, it.Key), rec.encode())
			w.set(itemRecordKey(prefixPriority, id, it.Key), priorityRecord{Priority: it.Priority, TimesSampled: it.TimesSampled}.encode())
			if w.b.Len() >= w.limit {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				w.flush()
			}
		}
	}
	w.set(metaKey, marshalJSON(metaRecord{Format: checkpointFormat, Kind: storeKindCheckpoint, Created: created.UTC(), ServerVersion: Version}))
	if err := w.finish(); err != nil {
		return nil, err
	}
	if err := db.Flush(); err != nil {
		return nil, err
	}
	closed = true
	if err := db.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// checksumFiles lists the regular files under root/sub with their sizes and
// CRC-32Cs (names relative to root), syncing each when sync is set. The
// Pebble lock file, which every open creates, is left out.
func checksumFiles(root, sub string, sync bool) ([]manifestFile, error) {
	var files []manifestFile
	err := filepath.WalkDir(filepath.Join(root, sub), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() == "LOCK" {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		size, crc, err := checksumFile(p, sync)
		if err != nil {
			return err
		}
		files = append(files, manifestFile{Name: filepath.ToSlash(rel), Size: size, CRC32C: fmt.Sprintf("%08x", crc)})
		return nil
	})
	if sync && err == nil {
		err = syncDir(filepath.Join(root, sub))
	}
	return files, err
}

func checksumFile(path string, sync bool) (int64, uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, 0, err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
	}
	return n, h.Sum32(), nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// readManifest reads and checks a checkpoint's MANIFEST.json.
func readManifest(path string) (*checkpointManifest, error) {
	data, err := os.ReadFile(filepath.Join(path, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, corruptf("%s is missing", manifestName)
	}
	if err != nil {
		return nil, err
	}
	var env manifestEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, corruptf("%s: %v", manifestName, err)
	}
	// The checksum is over the manifest's compact form (the file is
	// indented for people).
	var compact bytes.Buffer
	if err := json.Compact(&compact, env.Manifest); err != nil {
		return nil, corruptf("%s: %v", manifestName, err)
	}
	sum := sha256.Sum256(compact.Bytes())
	if hex.EncodeToString(sum[:]) != env.SHA256 {
		return nil, corruptf("%s: checksum mismatch", manifestName)
	}
	var m checkpointManifest
	if err := json.Unmarshal(env.Manifest, &m); err != nil {
		return nil, corruptf("%s: %v", manifestName, err)
	}
	if m.Format > checkpointFormat || m.Format < 1 {
		return nil, fmt.Errorf("format version %d is not supported (this server reads up to %d)", m.Format, checkpointFormat)
	}
	return &m, nil
}

// verifyCheckpoint checks a checkpoint's manifest and, unless quick, every
// file's size and CRC-32C. Files the manifest does not list (other than
// Pebble's lock file) are an error too.
func verifyCheckpoint(path string, quick bool) (*checkpointManifest, error) {
	m, err := readManifest(path)
	if err != nil {
		return nil, err
	}
	listed := make(map[string]manifestFile, len(m.Files))
	for _, f := range m.Files {
		listed[f.Name] = f
	}
	var found []manifestFile
	if quick {
		err = filepath.WalkDir(filepath.Join(path, storeDirName), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() == "LOCK" {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(path, p)
			f := listed[filepath.ToSlash(rel)]
			found = append(found, manifestFile{Name: filepath.ToSlash(rel), Size: info.Size(), CRC32C: f.CRC32C})
			return nil
		})
	} else {
		found, err = checksumFiles(path, storeDirName, false)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, corruptf("%s is missing", storeDirName)
	}
	if err != nil {
		return nil, err
	}
	for _, f := range found {
		want, ok := listed[f.Name]
		switch {
		case !ok:
			return nil, corruptf("unexpected file %s", f.Name)
		case f.Size != want.Size:
			return nil, corruptf("%s has %d bytes, the manifest says %d (truncated?)", f.Name, f.Size, want.Size)
		case f.CRC32C != want.CRC32C:
			return nil, corruptf("%s fails its checksum (crc32c %s, the manifest says %s)", f.Name, f.CRC32C, want.CRC32C)
		}
		delete(listed, f.Name)
	}
	for name := range listed {
		return nil, corruptf("%s is missing", name)
	}
	return m, nil
}

// openStoreReadOnly opens a store for reading.
func openStoreReadOnly(path string, log *slog.Logger) (*pebble.DB, error) {
	o := pebbleOptions(log, useRead, CheckpointOptions{})
	o.ErrorIfNotExists = true
	db, err := pebble.Open(path, o)
	if err != nil {
		if isLockError(err) {
			return nil, fmt.Errorf("%s is %w: %w", path, errStoreInUse, err)
		}
		return nil, err
	}
	return db, nil
}

// errStoreInUse is returned (wrapped) by openStoreReadOnly for a store a
// running server holds open.
var errStoreInUse = errors.New("in use by a running server")

func isLockError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "lock") && (strings.Contains(s, "temporarily unavailable") || strings.Contains(s, "resource busy") || strings.Contains(s, "held"))
}

// loadCheckpoint verifies and reads a whole checkpoint.
func loadCheckpoint(ctx context.Context, path string, log *slog.Logger, keepData bool) (*storeContents, error) {
	if _, err := verifyCheckpoint(path, false); err != nil {
		return nil, err
	}
	db, err := openStoreReadOnly(filepath.Join(path, storeDirName), log)
	if err != nil {
		return nil, corruptf("cannot open the store: %v", err)
	}
	defer db.Close()
	sc, err := readStore(ctx, db, keepData, nil)
	if err != nil {
		return nil, err
	}
	if sc.meta.Kind != storeKindCheckpoint {
		return nil, corruptf("store kind %q", sc.meta.Kind)
	}
	return sc, nil
}

// restore loads the newest state in the checkpoint directory into the
// server's tables (see docs/checkpoints.md for the precedence):
//
//   - the durable store, if present and readable, unless a complete,
//     uncorrupted checkpoint was captured after its last write;
//   - otherwise the newest complete, uncorrupted checkpoint; corrupt ones
//     are reported and skipped;
//   - otherwise nothing (empty tables); but if every checkpoint is corrupt
//     and there is no durable store, the server refuses to start.
//
// In durable mode the durable store is then made to hold exactly the
// restored state (rebuilt from it when the state came from a checkpoint).
func (c *checkpointer) restore() error {
	ctx := c.stopCtx
	dir := c.opts.Dir
	start := time.Now()

	var dur *durable
	var durContents *storeContents
	durPath := filepath.Join(dir, durableName)
	if _, err := os.Stat(durPath); err == nil {
		dur, durContents, err = openDurable(ctx, durPath, c.opts, c.log, c.s)
		if err != nil {
			c.log.Error("the durable store cannot be used; looking for checkpoints", "path", durPath, "err", err)
			if c.opts.Durable {
				aside := durPath + ".corrupt-" + time.Now().UTC().Format(checkpointTimeLayout)
				if rerr := os.Rename(durPath, aside); rerr != nil {
					// The rebuild below replaces it: say so.
					c.log.Error("cannot move the unusable durable store aside; it will be replaced", "path", durPath, "err", rerr)
				} else {
					c.log.Warn("moved the unusable durable store aside", "path", aside)
				}
			}
			dur, durContents = nil, nil
		}
	}
	closeDur := func() {
		if dur != nil {
			dur.close(false)
			dur = nil
		}
	}

	names, err := checkpointNames(dir)
	if err != nil {
		closeDur()
		return err
	}
	var ckContents *storeContents
	var ckPath string
	var corrupt []string
	for _, n := range names {
		created, _ := parseCheckpointName(n)
		if durContents != nil && !created.After(durContents.asOf) {
			break // the durable store is newer
		}
		p := filepath.Join(dir, n)
		sc, err := loadCheckpoint(ctx, p, c.log, true)
		if err != nil {
			if ctx.Err() != nil {
				closeDur()
				return ctx.Err()
			}
			c.log.Error("checkpoint is unusable; trying the previous one", "path", p, "err", err)
			corrupt = append(corrupt, fmt.Sprintf("%s: %v", n, err))
			continue
		}
		ckContents, ckPath = sc, p
		break
	}
	if ckContents == nil && durContents == nil && len(corrupt) > 0 {
		return fmt.Errorf("replay: no usable checkpoint in %s (%s); move the directory's contents away to start with empty tables",
			dir, strings.Join(corrupt, "; "))
	}

	var source string
	var contents *storeContents
	switch {
	case ckContents != nil:
		source, contents = ckPath, ckContents
		if durContents != nil {
			c.log.Info("a checkpoint is newer than the durable store; restoring the checkpoint", "checkpoint", ckPath, "durable_as_of", durContents.asOf)
		}
		durContents = nil
	case durContents != nil:
		source, contents = durPath, durContents
	}
	if contents != nil {
		if err := c.s.restoreContents(contents, source, c.log); err != nil {
			closeDur()
			return err
		}
		c.log.Info("restored", "from", source, "tables", len(contents.tables), "chunks", len(contents.chunks), "chunk_bytes", contents.chunkBytes, "took", time.Since(start))
	} else {
		c.log.Info("no checkpoint to restore; tables start empty", "dir", dir)
	}

	if !c.opts.Durable {
		closeDur()
		return nil
	}
	if source == durPath {
		if err := dur.adopt(durContents); err != nil {
			closeDur()
			return fmt.Errorf("replay: durable store: %w", err)
		}
		c.s.durable = dur
		return nil
	}
	closeDur()
	d, err := rebuildDurable(ctx, durPath, c.opts, c.log, c.s)
	if err != nil {
		return fmt.Errorf("replay: durable store: %w", err)
	}
	c.s.durable = d
	return nil
}

// restoreContents loads a store's tables into the server's tables. Every
// stored table must exist in the config; the config's options apply
// (differences are logged); a table is trimmed to its configured max_size
// in the order its remover would evict.
func (s *Server) restoreContents(sc *storeContents, source string, log *slog.Logger) error {
	for _, st := range sc.tables {
		if s.tables[st.opts.Name] == nil {
			return fmt.Errorf("%w: %s holds table %q, which the config does not define (config tables: %s); "+
				"define it in the config (a renamed table must keep its old name) or move %s away",
				ErrCheckpointConfig, source, st.opts.Name, strings.Join(s.tableNames(), ", "), source)
		}
	}
	for _, st := range sc.tables {
		t := s.tables[st.opts.Name]
		cur := t.Options()
		if diffs := optionDiffs(st.opts, cur); len(diffs) > 0 {
			log.Warn("table options differ from the checkpoint; the config's options apply",
				"table", cur.Name, "from", source, "differences", strings.Join(diffs, "; "))
		}
		snap := st.snapshot()
		if n := trimToMaxSize(snap, cur); n > 0 {
			log.Warn("restored table holds more items than its max_size; evicted the excess in remover order",
				"table", cur.Name, "evicted", n, "max_size", cur.MaxSize, "remover", cur.Remover.String())
		}
		if fixLimiterCounts(snap) {
			log.Debug("adjusted the limiter's delete count to the restored size", "table", cur.Name)
		}
		if err := t.Restore(snap); err != nil {
			return fmt.Errorf("%w: %s: table %q: %w", ErrCheckpointConfig, source, cur.Name, err)
		}
		in := t.Info()
		attrs := []any{"table", cur.Name, "items", in.Size, "inserts", in.Limiter.Inserts, "samples", in.Limiter.Samples,
			"deletes", in.Limiter.Deletes, "rate_limiter", in.RateLimiter.String()}
		switch {
		case in.Size > 0 && in.SampleBlockedReason != "":
			log.Warn("restored table cannot be sampled until its rate limiter allows it",
				append(attrs, "sample_blocked_reason", in.SampleBlockedReason)...)
		default:
			log.Info("restored table", attrs...)
		}
		if in.InsertBlockedReason != "" {
			log.Warn("restored table cannot take inserts until its rate limiter allows it",
				"table", cur.Name, "insert_blocked_reason", in.InsertBlockedReason)
		}
	}
	for _, name := range s.names {
		if sc.table(name) == nil {
			log.Info("table is not in the checkpoint; it starts empty", "table", name, "from", source)
		}
	}
	return nil
}

// optionDiffs describes how a stored table's options differ from the
// configured ones (the seed is not compared: 0 in a config means random).
func optionDiffs(stored, cfg table.Options) []string {
	var d []string
	add := func(field string, a, b any) {
		d = append(d, fmt.Sprintf("%s: checkpoint %v, config %v", field, a, b))
	}
	if stored.Sampler != cfg.Sampler {
		add("sampler", stored.Sampler, cfg.Sampler)
	}
	if stored.Remover != cfg.Remover {
		add("remover", stored.Remover, cfg.Remover)
	}
	if stored.MaxSize != cfg.MaxSize {
		add("max_size", stored.MaxSize, cfg.MaxSize)
	}
	if stored.MaxTimesSampled != cfg.MaxTimesSampled {
		add("max_times_sampled", stored.MaxTimesSampled, cfg.MaxTimesSampled)
	}
	if stored.RateLimiter != cfg.RateLimiter {
		add("rate_limiter", stored.RateLimiter, cfg.RateLimiter)
	}
	if !reflect.DeepEqual(toOptionsRecord(stored).Signature, toOptionsRecord(cfg).Signature) {
		d = append(d, "signature differs")
	}
	return d
}

// trimToMaxSize drops items beyond the configured max_size in the order the
// table's remover would evict them: FIFO, uniform and prioritized drop the
// oldest, LIFO the newest, the heaps the lowest or highest priority (oldest
// first among equals). It returns the number dropped, counted as deletes.
func trimToMaxSize(s *table.Snapshot, o table.Options) int {
	excess := len(s.Items) - int(o.MaxSize)
	if excess <= 0 {
		return 0
	}
	order := make([]int, len(s.Items))
	for i := range order {
		order[i] = i
	}
	switch o.Remover.Kind {
	case sampler.KindLIFO:
		slices.Reverse(order)
	case sampler.KindMinHeap:
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(s.Items[a].Priority, s.Items[b].Priority) })
	case sampler.KindMaxHeap:
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(s.Items[b].Priority, s.Items[a].Priority) })
	}
	drop := make([]bool, len(s.Items))
	for _, i := range order[:excess] {
		drop[i] = true
	}
	kept := s.Items[:0]
	for i, it := range s.Items {
		if !drop[i] {
			kept = append(kept, it)
		}
	}
	clear(s.Items[len(kept):])
	s.Items = kept
	s.Limiter.Deletes += int64(excess)
	return excess
}

// fixLimiterCounts makes inserts - deletes equal the number of items, which
// holds in a live table; a durable store's lazily written counters may lag.
func fixLimiterCounts(s *table.Snapshot) bool {
	n := int64(len(s.Items))
	l := &s.Limiter
	if l.Inserts-l.Deletes == n && l.Deletes >= 0 {
		return false
	}
	l.Deletes = l.Inserts - n
	if l.Deletes < 0 {
		l.Inserts, l.Deletes = n, 0
	}
	return true
}
