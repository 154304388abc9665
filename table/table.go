package table

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/recall-rl/recall/internal/keyindex"
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
)

// Errors returned by Table methods, wrapped with detail. Test with errors.Is.
var (
	// ErrClosed is returned by every operation on a closed table, including
	// waits that were in progress when it closed.
	ErrClosed = errors.New("table: closed")
	// ErrInvalidPriority is returned for a NaN, infinite or negative priority.
	ErrInvalidPriority = errors.New("table: invalid priority")
	// ErrInvalidItem is returned for an item whose trajectory is empty or
	// does not agree with the chunks it carries.
	ErrInvalidItem = errors.New("table: invalid item")
	// ErrSignatureMismatch is returned for an item that does not match the
	// table's signature.
	ErrSignatureMismatch = errors.New("table: item does not match signature")
	// ErrInvalidArgument is returned for a bad argument such as a sample
	// count below 1.
	ErrInvalidArgument = errors.New("table: invalid argument")
)

// Table holds prioritised items that reference chunks, picks items to
// sample and to evict with its selectors, and paces inserts and samples
// with its rate limiter. All methods are safe for concurrent use; Insert and
// Sample block while the rate limiter forbids them.
type Table struct {
	opts Options // immutable after New

	mu struct {
		sync.Mutex
		items   keyindex.Index // key -> slot in slab
		slab    slab           // item records
		sampler sampler.Selector
		remover sampler.Selector
		limiter *ratelimit.Limiter
		closed  bool
		nextSeq uint64

		// notify is closed and replaced whenever state that a waiter
		// depends on changes, but only while there are waiters.
		notify  chan struct{}
		waiters int

		episodes           map[uint64]int64 // episode id -> chunk refs from live items
		numDeletedEpisodes int64
		numUniqueSamples   int64
		insertWaits        int64 // inserts that had to wait
		sampleWaits        int64 // sample calls that had to wait
		insertWaiting      int   // goroutines waiting to insert now
		sampleWaiting      int   // goroutines waiting to sample now
	}
}

// New validates opts (after applying defaults) and returns an empty table.
func New(opts Options) (*Table, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.Signature = opts.Signature.clone()
	if opts.Chunks == nil {
		opts.Chunks = NewChunkStore()
	}
	if opts.Seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		opts.Seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	// The selectors are keyed by slab slot, not by item key: slots are
	// small and reused, so the selectors index them by array.
	s, err := sampler.NewDense(opts.Sampler, opts.Seed)
	if err != nil {
		return nil, fmt.Errorf("%w: sampler: %v", ErrInvalidOptions, err)
	}
	r, err := sampler.NewDense(opts.Remover, opts.Seed^0x9e3779b97f4a7c15)
	if err != nil {
		return nil, fmt.Errorf("%w: remover: %v", ErrInvalidOptions, err)
	}
	lim, err := ratelimit.NewLimiter(opts.RateLimiter)
	if err != nil {
		return nil, fmt.Errorf("%w: rate_limiter: %v", ErrInvalidOptions, err)
	}
	t := &Table{opts: opts}
	t.mu.items = keyindex.New()
	t.mu.sampler, t.mu.remover, t.mu.limiter = s, r, lim
	t.mu.notify = make(chan struct{})
	t.mu.episodes = make(map[uint64]int64)
	return t, nil
}

// Name returns the table's name.
func (t *Table) Name() string { return t.opts.Name }

// Options returns the options the table was built with (defaults applied).
func (t *Table) Options() Options {
	o := t.opts
	o.Signature = o.Signature.clone()
	return o
}

// Chunks returns the chunk store the table's references belong to.
func (t *Table) Chunks() *ChunkStore { return t.opts.Chunks }

// Insert adds an item, waiting while the rate limiter forbids it. If the key
// is already present only its priority is updated (so resending an item is
// harmless) and Insert does not wait. When the table grows past MaxSize the
// remover evicts one item, which may be the new one.
//
// Insert returns ErrInvalidPriority, ErrInvalidItem or ErrSignatureMismatch
// for a bad item (the table is unchanged), ErrClosed if the table closes, or
// an error matching ctx.Err() if ctx ends first.
func (t *Table) Insert(ctx context.Context, it Item) error {
	_, err := t.InsertBatch(ctx, []Item{it})
	return err
}

// InsertBatch inserts items in order, each as Insert does, holding the
// table lock throughout except while the rate limiter makes it wait (the
// items inserted so far are visible to other callers by then). Every item
// is checked first, so a malformed one fails the batch with nothing
// inserted. Otherwise it returns how many items were inserted (or had their
// priority updated) and, if that is not all of them, why it stopped.
//
// A server inserting a request's items uses it to pay for the lock, the
// wake-ups of waiters and the cache misses of the key index once per batch
// rather than once per item.
func (t *Table) InsertBatch(ctx context.Context, items []Item) (int, error) {
	for i := range items {
		if err := validateItem(&items[i], t.opts.Signature); err != nil {
			return 0, err
		}
	}
	var scratch [4]*Chunk // released chunks; usually fits on the stack
	released := scratch[:0]
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return 0, fmt.Errorf("%w: %q", ErrClosed, t.opts.Name)
	}
	for i := range items {
		t.mu.items.Touch(items[i].Key)
	}
	n := 0
	var err error
	for ; n < len(items); n++ {
		it := &items[n]
		var old *item
		ready := func() bool {
			if rec, ok := t.itemLocked(it.Key); ok {
				old = rec // an existing key only gets its priority updated
				return true
			}
			return t.mu.limiter.CanInsert(1)
		}
		if !ready() {
			t.notifyLocked() // before waiting: the items inserted so far may be what others wait for
			if _, err = t.awaitLocked(ctx, "insert", &t.mu.insertWaits, &t.mu.insertWaiting, ready); err != nil {
				break
			}
		}
		if old != nil {
			if err = t.updateLocked(old, it.Priority); err != nil {
				break
			}
			continue
		}
		if err = t.insertLocked(it); err != nil {
			break
		}
		if int64(t.mu.items.Len()) > t.opts.MaxSize {
			if s, serr := t.mu.remover.Sample(); serr == nil {
				released = t.deleteLocked(t.mu.slab.at(int32(s.Key)).key, released)
			}
		}
	}
	t.notifyLocked()
	t.mu.Unlock()
	releaseAll(released)
	return n, err
}

// insertLocked adds a new item, taking chunk references. t.mu must be held.
func (t *Table) insertLocked(it *Item) error {
	slot := t.mu.slab.alloc()
	if err := t.mu.sampler.Insert(uint64(slot), it.Priority); err != nil {
		t.mu.slab.release(slot)
		return fmt.Errorf("table %q: sampler: %w", t.opts.Name, err)
	}
	if err := t.mu.remover.Insert(uint64(slot), it.Priority); err != nil {
		_ = t.mu.sampler.Delete(uint64(slot))
		t.mu.slab.release(slot)
		return fmt.Errorf("table %q: remover: %w", t.opts.Name, err)
	}
	// The chunk list is shared, read-only, with every sample of the item,
	// so it is never reused: a one-chunk item uses the chunk's own list (no
	// allocation), others get a new one.
	var chunks []*Chunk
	if len(it.Chunks) == 1 {
		chunks = it.Chunks[0].chunk[:]
	} else {
		chunks = make([]*Chunk, len(it.Chunks))
		for i, r := range it.Chunks {
			chunks[i] = r.chunk[0]
		}
	}
	for _, r := range it.Chunks {
		r.Acquire()
		t.mu.episodes[r.chunk[0].EpisodeID]++
	}
	*t.mu.slab.at(slot) = item{
		key:        it.Key,
		slot:       slot,
		priority:   it.Priority,
		seq:        t.mu.nextSeq,
		insertedAt: t.opts.Now().UnixNano(),
		trajectory: it.Trajectory,
		chunks:     chunks,
	}
	t.mu.nextSeq++
	t.mu.items.Insert(it.Key, slot)
	t.mu.limiter.Insert(1)
	return nil
}

// itemLocked returns the record of key. The pointer is valid until the next
// insert. t.mu must be held.
func (t *Table) itemLocked(key uint64) (*item, bool) {
	slot, ok := t.mu.items.Get(key)
	if !ok {
		return nil, false
	}
	return t.mu.slab.at(slot), true
}

// updateLocked sets an item's priority in both selectors. t.mu must be held.
func (t *Table) updateLocked(rec *item, priority float64) error {
	if err := t.mu.sampler.Update(uint64(rec.slot), priority); err != nil {
		return fmt.Errorf("table %q: sampler: %w", t.opts.Name, err)
	}
	if err := t.mu.remover.Update(uint64(rec.slot), priority); err != nil {
		_ = t.mu.sampler.Update(uint64(rec.slot), rec.priority)
		return fmt.Errorf("table %q: remover: %w", t.opts.Name, err)
	}
	rec.priority = priority
	return nil
}

// deleteLocked removes the item with the given key (which must exist) and
// appends its chunks, whose references are to be released once t.mu is
// unlocked, to released. t.mu must be held.
func (t *Table) deleteLocked(key uint64, released []*Chunk) []*Chunk {
	slot, _ := t.mu.items.Remove(key)
	rec := t.mu.slab.at(slot)
	_ = t.mu.sampler.Delete(uint64(slot))
	_ = t.mu.remover.Delete(uint64(slot))
	t.mu.limiter.Delete(1)
	for _, c := range rec.chunks {
		ep := c.EpisodeID
		if t.mu.episodes[ep]--; t.mu.episodes[ep] <= 0 {
			delete(t.mu.episodes, ep)
			t.mu.numDeletedEpisodes++
		}
	}
	released = append(released, rec.chunks...)
	t.mu.slab.release(slot) // zeroes the record so its data can be collected
	return released
}

// releaseAll gives back the table's reference to each chunk.
func releaseAll(chunks []*Chunk) {
	for _, c := range chunks {
		c.ref.Release()
	}
}

// Sample returns n items, waiting until the rate limiter allows n samples at
// once. Items may repeat within a call. An item that reaches
// MaxTimesSampled is deleted after being picked, so it is returned by this
// call and never again.
//
// Sample returns ErrInvalidArgument for n < 1, ErrClosed if the table
// closes, or an error matching ctx.Err() if ctx ends first.
func (t *Table) Sample(ctx context.Context, n int) ([]Sampled, error) {
	return t.sample(ctx, n, false, nil)
}

// SampleUpTo waits until at least one sample is allowed, then returns as
// many items as the rate limiter allows, at most n. It is the flexible
// batch a streaming server wants: it never waits for a full batch.
func (t *Table) SampleUpTo(ctx context.Context, n int) ([]Sampled, error) {
	return t.sample(ctx, n, true, nil)
}

// SampleInto is SampleUpTo (flexible) or Sample appending to dst, so a
// caller in a loop can reuse one slice.
func (t *Table) SampleInto(ctx context.Context, dst []Sampled, n int, flexible bool) ([]Sampled, error) {
	return t.sample(ctx, n, flexible, dst)
}

func (t *Table) sample(ctx context.Context, n int, flexible bool, dst []Sampled) ([]Sampled, error) {
	if n < 1 {
		return dst, fmt.Errorf("%w: table %q: sample count must be >= 1, got %d", ErrInvalidArgument, t.opts.Name, n)
	}
	need := int64(n)
	if flexible {
		need = 1
	}
	t.mu.Lock()
	waited, err := t.awaitLocked(ctx, "sample", &t.mu.sampleWaits, &t.mu.sampleWaiting, func() bool {
		return t.mu.limiter.CanSample(need) && t.mu.items.Len() > 0
	})
	if err != nil {
		t.mu.Unlock()
		return dst, err
	}
	var scratch [4]*Chunk
	released := scratch[:0]
	for i := 0; i < n; i++ {
		if i > 0 && (!t.mu.limiter.CanSample(1) || t.mu.items.Len() == 0) {
			break // flexible batch: stop where the limiter does
		}
		var s Sampled
		s, released = t.sampleOneLocked(waited, released)
		dst = append(dst, s)
	}
	t.notifyLocked()
	t.mu.Unlock()
	releaseAll(released)
	return dst, nil
}

// sampleOneLocked picks one item and applies the sample's effects. t.mu must
// be held and the table must not be empty.
func (t *Table) sampleOneLocked(rateLimited bool, released []*Chunk) (Sampled, []*Chunk) {
	pick, err := t.mu.sampler.Sample()
	if err != nil {
		panic(fmt.Sprintf("table %q: sampler failed on a table of %d items: %v", t.opts.Name, t.mu.items.Len(), err))
	}
	rec := t.mu.slab.at(int32(pick.Key))
	rec.timesSampled++
	if rec.timesSampled == 1 {
		t.mu.numUniqueSamples++
	}
	out := Sampled{
		Info: SampleInfo{
			Key:          rec.key,
			Priority:     rec.priority,
			Probability:  pick.Probability,
			TimesSampled: rec.timesSampled,
			TableSize:    int64(t.mu.items.Len()),
			InsertedAt:   time.Unix(0, rec.insertedAt),
			RateLimited:  rateLimited,
		},
		Trajectory: rec.trajectory,
		Chunks:     rec.chunks,
	}
	t.mu.limiter.Sample(1)
	if mts := t.opts.MaxTimesSampled; mts > 0 && rec.timesSampled >= mts {
		released = t.deleteLocked(rec.key, released)
	}
	return out, released
}

// MutatePriorities deletes the items with keys in deletes, then sets the
// priorities in updates. Unknown keys are ignored. All priorities are
// checked first: if one is invalid nothing changes.
func (t *Table) MutatePriorities(ctx context.Context, updates map[uint64]float64, deletes []uint64) error {
	for k, p := range updates {
		if err := validPriority(k, p); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrClosed, t.opts.Name)
	}
	var released []*Chunk
	for _, k := range deletes {
		if _, ok := t.mu.items.Get(k); ok {
			released = t.deleteLocked(k, released)
		}
	}
	var err error
	for k, p := range updates {
		if rec, ok := t.itemLocked(k); ok {
			if err = t.updateLocked(rec, p); err != nil {
				break
			}
		}
	}
	if len(released) > 0 {
		t.notifyLocked()
	}
	t.mu.Unlock()
	releaseAll(released)
	return err
}

// Reset removes every item and zeroes the limiter and episode counters.
func (t *Table) Reset(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrClosed, t.opts.Name)
	}
	released := t.clearLocked()
	t.notifyLocked()
	t.mu.Unlock()
	releaseAll(released)
	return nil
}

// clearLocked empties the table and zeroes its counters, returning the chunk
// references to release. t.mu must be held.
func (t *Table) clearLocked() []*Chunk {
	var released []*Chunk
	t.mu.slab.each(func(rec *item) { released = append(released, rec.chunks...) })
	t.mu.items.Clear()
	t.mu.slab.reset()
	t.mu.sampler.Clear()
	t.mu.remover.Clear()
	t.mu.limiter.Reset()
	clear(t.mu.episodes)
	t.mu.numDeletedEpisodes = 0
	t.mu.numUniqueSamples = 0
	return released
}

// Close releases every item and wakes all waiters with ErrClosed. Later
// calls fail with ErrClosed. Close is idempotent.
func (t *Table) Close() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.closed = true
	released := t.clearLocked()
	t.notifyLocked()
	t.mu.Unlock()
	releaseAll(released)
	return nil
}

// CanInsert reports whether n inserts would be allowed now.
func (t *Table) CanInsert(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.mu.closed && t.mu.limiter.CanInsert(int64(n))
}

// CanSample reports whether a sample of n would be allowed now.
func (t *Table) CanSample(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.mu.closed && t.mu.items.Len() > 0 && t.mu.limiter.CanSample(int64(n))
}

// Size returns the number of items.
func (t *Table) Size() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int64(t.mu.items.Len())
}

// awaitLocked waits until ready reports true, counting the call in waits
// (once, if it waited at all) and in waiting (while it waits). It returns
// whether it waited, ErrClosed if the table closes, or ctx's error. t.mu is
// held on entry and on return.
func (t *Table) awaitLocked(ctx context.Context, what string, waits *int64, waiting *int, ready func() bool) (waited bool, err error) {
	for {
		if t.mu.closed {
			return waited, fmt.Errorf("%w: %q", ErrClosed, t.opts.Name)
		}
		if ready() {
			return waited, nil
		}
		if !waited {
			waited = true
			*waits++
		}
		*waiting++
		err := t.waitLocked(ctx)
		*waiting--
		if err != nil {
			return waited, fmt.Errorf("table %q: rate limiter: timed out waiting for the right to %s: %w", t.opts.Name, what, err)
		}
	}
}

// waitLocked releases t.mu until the table's state changes or ctx ends, then
// reacquires it. t.mu must be held.
func (t *Table) waitLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch := t.mu.notify
	t.mu.waiters++
	t.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	}
	t.mu.Lock()
	t.mu.waiters--
	return err
}

// notifyLocked wakes every waiter so it re-checks its condition. It costs
// nothing when nobody waits. t.mu must be held.
func (t *Table) notifyLocked() {
	if t.mu.waiters == 0 {
		return
	}
	close(t.mu.notify)
	t.mu.notify = make(chan struct{})
}

// CheckItem reports whether Insert would reject it as malformed (bad
// priority, inconsistent trajectory, signature mismatch) without changing
// the table. Servers use it to reject a whole request before inserting any
// of its items.
func (t *Table) CheckItem(it *Item) error { return validateItem(it, t.opts.Signature) }
