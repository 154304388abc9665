package replay

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recall-rl/recall/table"
)

// The chunk log keeps durable mode's chunk payloads out of Pebble: an LSM
// writes every byte at least twice (write-ahead log, then flush) and copies
// it through its memtable, which for 16 KiB chunks costs more than the rest
// of the insert path. Chunks are appended to segment files
// (DIR/durable/chunks/NNNNNNNN.seg); Pebble holds, under prefix "V", a
// pointer to each (segment, offset, length, CRC-32C).
//
// A segment record is
//
//	u32 crc32c(rest) | u64 chunk key | u32 payload length | payload
//
// (little endian; the payload is a "C" record value). A request's chunks
// are appended, and synced, before its pointer records are written to
// Pebble, so a pointer never outlives its data. Appends go to the current
// segment only; segments rotate at segmentBytes. A sealed segment is
// deleted once no pointer uses it (after the deletions are synced) and
// rewritten (its live chunks appended again) once less than a quarter of
// it is live. A restarted store appends to a new segment, so a record torn
// by a crash is never followed by a valid one that matters.

// segmentBytes is the size at which segments rotate (a variable for
// tests).
var segmentBytes int64 = 64 << 20

const (
	segmentHeader    = 16
	segmentSuffix    = ".seg"
	chunkLogDirName  = "chunks"
	durableMetaName  = "meta"
	segmentLiveRatio = 4 // rewrite a sealed segment when live*4 < size
)

// chunkLoc is where a chunk's record is.
type chunkLoc struct {
	seg uint32
	off int64
	n   uint32 // record length, header included
	crc uint32 // of the record after its crc field
}

func (l chunkLoc) encode() []byte {
	b := make([]byte, 0, 24)
	b = binary.AppendUvarint(b, uint64(l.seg))
	b = binary.AppendUvarint(b, uint64(l.off))
	b = binary.AppendUvarint(b, uint64(l.n))
	return binary.LittleEndian.AppendUint32(b, l.crc)
}

func decodeChunkLoc(b []byte) (chunkLoc, error) {
	d := decoder{b: b}
	seg, off, n := d.uvarint(), d.uvarint(), d.uvarint()
	var crc uint32
	if raw := d.bytes(4); raw != nil {
		crc = binary.LittleEndian.Uint32(raw)
	}
	if err := d.finish("chunk pointer"); err != nil {
		return chunkLoc{}, err
	}
	if seg > 1<<31 || off > 1<<62 || n < segmentHeader || n > 1<<31 {
		return chunkLoc{}, corruptf("chunk pointer (%d, %d, %d)", seg, off, n)
	}
	return chunkLoc{seg: uint32(seg), off: int64(off), n: uint32(n), crc: crc}, nil
}

func pointerRecordKey(key uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixPointer
	binary.BigEndian.PutUint64(k[1:], key)
	return k
}

// segment is one segment file.
type segment struct {
	id   uint32
	f    *os.File
	size atomic.Int64 // bytes appended (the write offset)
	// pending counts appends not yet referenced or given up by their
	// commit; a segment is not deleted while any remain.
	pending atomic.Int64
	live    int64 // record bytes referenced by pointers; durable.mu
	sealed  bool  // chunkLog.mu

	syncMu  sync.Mutex
	syncC   *sync.Cond
	synced  int64 // bytes known durable
	syncing bool
}

// chunkLog is a directory of segments.
type chunkLog struct {
	dir          string
	readOnly     bool
	noSync       bool
	syncInterval time.Duration

	mu     sync.Mutex // guards cur, segs, nextID and appends to cur
	cur    *segment
	segs   map[uint32]*segment
	nextID uint32
	buf    []byte
}

func segmentName(id uint32) string { return fmt.Sprintf("%08d%s", id, segmentSuffix) }

// openChunkLog opens the segments in dir (creating dir unless readOnly).
// Appends go to a new segment.
func openChunkLog(dir string, readOnly bool, co CheckpointOptions) (*chunkLog, error) {
	l := &chunkLog{dir: dir, readOnly: readOnly, noSync: co.NoFsync, syncInterval: co.SyncInterval, segs: make(map[uint32]*segment)}
	if !readOnly {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if readOnly && errors.Is(err, fs.ErrNotExist) {
			return l, nil
		}
		return nil, err
	}
	for _, e := range ents {
		s, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			continue
		}
		flag := os.O_RDONLY
		if !readOnly {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(filepath.Join(dir, e.Name()), flag, 0)
		if err != nil {
			l.close()
			return nil, err
		}
		seg := &segment{id: uint32(id), f: f, sealed: true}
		info, err := f.Stat()
		if err != nil {
			l.close()
			return nil, err
		}
		seg.size.Store(info.Size())
		seg.synced = info.Size()
		seg.syncC = sync.NewCond(&seg.syncMu)
		l.segs[seg.id] = seg
		l.nextID = max(l.nextID, seg.id+1)
	}
	if l.nextID == 0 {
		l.nextID = 1
	}
	return l, nil
}

// rotateLocked seals the current segment and starts a new one. l.mu must
// be held.
func (l *chunkLog) rotateLocked() error {
	if l.cur != nil {
		l.cur.sealed = true
	}
	id := l.nextID
	f, err := os.OpenFile(filepath.Join(l.dir, segmentName(id)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if !l.noSync {
		if err := syncDir(l.dir); err != nil {
			f.Close()
			return err
		}
	}
	l.nextID++
	seg := &segment{id: id, f: f}
	seg.syncC = sync.NewCond(&seg.syncMu)
	l.segs[id] = seg
	l.cur = seg
	return nil
}

// append writes the chunks' records with one write to the current segment
// and returns their locations, the segment and its size after them. The
// caller syncs (seg.sync) and releases the pending appends (seg.pending).
func (l *chunkLog) append(chunks []*table.Chunk) ([]chunkLoc, *segment, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil || l.cur.size.Load() >= segmentBytes {
		if err := l.rotateLocked(); err != nil {
			return nil, nil, 0, err
		}
	}
	seg := l.cur
	buf := l.buf[:0]
	locs := make([]chunkLoc, len(chunks))
	off := seg.size.Load()
	for i, c := range chunks {
		start := len(buf)
		buf = append(buf, make([]byte, segmentHeader)...)
		buf = appendChunkHeader(buf, c)
		buf = append(buf, c.Data...)
		rec := buf[start:]
		binary.LittleEndian.PutUint64(rec[4:], c.Key)
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(rec)-segmentHeader))
		crc := crc32.Checksum(rec[4:], castagnoli)
		binary.LittleEndian.PutUint32(rec[0:], crc)
		locs[i] = chunkLoc{seg: seg.id, off: off + int64(start), n: uint32(len(rec)), crc: crc}
	}
	if cap(buf) <= 8<<20 {
		l.buf = buf
	}
	if _, err := seg.f.WriteAt(buf, off); err != nil {
		return nil, nil, 0, err
	}
	end := off + int64(len(buf))
	seg.size.Store(end)
	seg.pending.Add(int64(len(chunks)))
	return locs, seg, end, nil
}

// sync makes the segment's first upTo bytes durable. Concurrent calls
// share fsyncs; with a sync interval, fsyncs are at least that far apart.
func (s *segment) sync(upTo int64, noSync bool, interval time.Duration) error {
	if noSync {
		return nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for s.synced < upTo {
		if s.syncing {
			s.syncC.Wait()
			continue
		}
		s.syncing = true
		target := s.size.Load()
		s.syncMu.Unlock()
		if interval > 0 {
			time.Sleep(interval)
			target = s.size.Load()
		}
		err := s.f.Sync()
		s.syncMu.Lock()
		s.syncing = false
		s.syncC.Broadcast()
		if err != nil {
			return err
		}
		s.synced = max(s.synced, target)
	}
	return nil
}

// read reads and checks a chunk's record; with keepData the chunk's data
// is returned (else only its size).
func (l *chunkLog) read(key uint64, loc chunkLoc, keepData bool) (*table.Chunk, int, error) {
	l.mu.Lock()
	seg := l.segs[loc.seg]
	l.mu.Unlock()
	if seg == nil {
		return nil, 0, corruptf("chunk %d is in segment %d, which is missing", key, loc.seg)
	}
	rec := make([]byte, loc.n)
	if _, err := seg.f.ReadAt(rec, loc.off); err != nil {
		return nil, 0, corruptf("chunk %d: segment %d offset %d: %v", key, loc.seg, loc.off, err)
	}
	crc := crc32.Checksum(rec[4:], castagnoli)
	switch {
	case crc != loc.crc || binary.LittleEndian.Uint32(rec) != crc:
		return nil, 0, corruptf("chunk %d in segment %d fails its checksum", key, loc.seg)
	case binary.LittleEndian.Uint64(rec[4:]) != key || int(binary.LittleEndian.Uint32(rec[12:])) != len(rec)-segmentHeader:
		return nil, 0, corruptf("chunk %d: segment %d offset %d holds another record", key, loc.seg, loc.off)
	}
	c, n, err := decodeChunk(key, rec[segmentHeader:], false)
	if err != nil {
		return nil, 0, err
	}
	if keepData {
		c.Data = rec[len(rec)-n:] // rec is ours
	}
	return c, n, nil
}

// remove deletes a segment file.
func (l *chunkLog) remove(id uint32) error {
	l.mu.Lock()
	seg := l.segs[id]
	delete(l.segs, id)
	l.mu.Unlock()
	if seg == nil {
		return nil
	}
	seg.f.Close()
	return os.Remove(filepath.Join(l.dir, segmentName(id)))
}

// sealed returns the sealed segments, by id.
func (l *chunkLog) sealedSegments() []*segment {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*segment
	for _, s := range l.segs {
		if s.sealed {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *segment) int { return cmp.Compare(a.id, b.id) })
	return out
}

// syncAll fsyncs every segment and the directory.
func (l *chunkLog) syncAll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		if err := s.f.Sync(); err != nil {
			return err
		}
	}
	return syncDir(l.dir)
}

func (l *chunkLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		s.f.Close()
	}
	clear(l.segs)
	l.cur = nil
}
