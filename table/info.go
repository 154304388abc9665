package table

import (
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
)

// Info is a snapshot of a table's configuration and counters.
type Info struct {
	Name            string
	Sampler         sampler.Spec
	Remover         sampler.Spec
	MaxSize         int64
	MaxTimesSampled int32
	RateLimiter     ratelimit.Config
	// Limiter holds the limiter's counters: completed inserts, samples and
	// deletes since the last reset.
	Limiter ratelimit.State
	// Signature is the table's signature, or nil.
	Signature *Signature

	Size               int64
	NumEpisodes        int64
	NumDeletedEpisodes int64
	NumUniqueSamples   int64

	// InsertWaits and SampleWaits count calls that had to wait for the
	// limiter; InsertsWaiting and SamplesWaiting are the calls waiting now.
	InsertWaits    int64
	SampleWaits    int64
	InsertsWaiting int
	SamplesWaiting int
	// SampleBlockedReason says why a sample of one item would wait now, or
	// is empty if it would not.
	SampleBlockedReason string
	// InsertBlockedReason says why an insert of one item would wait now.
	InsertBlockedReason string
	Closed              bool
}

// Info returns the table's current configuration and counters.
func (t *Table) Info() Info {
	t.mu.Lock()
	defer t.mu.Unlock()
	in := Info{
		Name:                t.opts.Name,
		Sampler:             t.opts.Sampler,
		Remover:             t.opts.Remover,
		MaxSize:             t.opts.MaxSize,
		MaxTimesSampled:     t.opts.MaxTimesSampled,
		RateLimiter:         t.opts.RateLimiter,
		Limiter:             t.mu.limiter.State(),
		Signature:           t.opts.Signature.clone(),
		Size:                int64(t.mu.items.Len()),
		NumEpisodes:         int64(len(t.mu.episodes)),
		NumDeletedEpisodes:  t.mu.numDeletedEpisodes,
		NumUniqueSamples:    t.mu.numUniqueSamples,
		InsertWaits:         t.mu.insertWaits,
		SampleWaits:         t.mu.sampleWaits,
		InsertsWaiting:      t.mu.insertWaiting,
		SamplesWaiting:      t.mu.sampleWaiting,
		SampleBlockedReason: t.mu.limiter.SampleBlockedReason(1),
		InsertBlockedReason: t.mu.limiter.InsertBlockedReason(1),
		Closed:              t.mu.closed,
	}
	if in.SampleBlockedReason == "" && in.Size == 0 {
		in.SampleBlockedReason = "table is empty"
	}
	if t.mu.closed {
		in.SampleBlockedReason, in.InsertBlockedReason = "table is closed", "table is closed"
	}
	return in
}
