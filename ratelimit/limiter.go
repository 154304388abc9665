package ratelimit

import "fmt"

// Limiter is a Config plus the counters it judges: completed inserts,
// samples and deletes. It holds no lock and never blocks; the owner (a
// table) serialises calls and does the waiting.
type Limiter struct {
	cfg     Config
	inserts int64
	samples int64
	deletes int64
}

// State is a snapshot of a limiter's counters. It is what info reports and
// checkpoints restore.
type State struct {
	Inserts int64 `json:"inserts"`
	Samples int64 `json:"samples"`
	Deletes int64 `json:"deletes"`
}

// NewLimiter returns a limiter with zeroed counters. It validates cfg.
func NewLimiter(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{cfg: cfg}, nil
}

// Config returns the limiter's parameters.
func (l *Limiter) Config() Config { return l.cfg }

// State returns the current counters.
func (l *Limiter) State() State {
	return State{Inserts: l.inserts, Samples: l.samples, Deletes: l.deletes}
}

// Restore replaces the counters, as when loading a checkpoint.
func (l *Limiter) Restore(s State) { l.inserts, l.samples, l.deletes = s.Inserts, s.Samples, s.Deletes }

// Reset zeroes the counters.
func (l *Limiter) Reset() { l.inserts, l.samples, l.deletes = 0, 0, 0 }

// Size is inserts minus deletes: the table size as the limiter sees it.
func (l *Limiter) Size() int64 { return l.inserts - l.deletes }

// Diff is inserts*SamplesPerInsert - samples.
func (l *Limiter) Diff() float64 {
	return float64(l.inserts)*l.cfg.SamplesPerInsert - float64(l.samples)
}

// CanSample reports whether n more samples are allowed now: the size is at
// least MinSizeToSample and Diff()-n >= MinDiff.
func (l *Limiter) CanSample(n int64) bool {
	return l.Size() >= l.cfg.MinSizeToSample && l.Diff()-float64(n) >= l.cfg.MinDiff
}

// CanInsert reports whether n more inserts are allowed now. Inserts are free
// while the size after them is at most MinSizeToSample; past that the diff
// after them must stay at or below MaxDiff.
func (l *Limiter) CanInsert(n int64) bool {
	if l.inserts+n-l.deletes <= l.cfg.MinSizeToSample {
		return true
	}
	return l.diffAfterInserts(n) <= l.cfg.MaxDiff
}

// diffAfterInserts is Diff() after n more inserts.
func (l *Limiter) diffAfterInserts(n int64) float64 {
	return float64(l.inserts+n)*l.cfg.SamplesPerInsert - float64(l.samples)
}

// Insert records n completed inserts.
func (l *Limiter) Insert(n int64) { l.inserts += n }

// Sample records n completed samples.
func (l *Limiter) Sample(n int64) { l.samples += n }

// Delete records n deleted items.
func (l *Limiter) Delete(n int64) { l.deletes += n }

// SampleBlockedReason explains why a sample of n is not allowed, or returns
// "" if it is. It exists so that a blocked learner (notably right after a
// checkpoint restore) can be told exactly which condition holds it back.
func (l *Limiter) SampleBlockedReason(n int64) string {
	if size := l.Size(); size < l.cfg.MinSizeToSample {
		return fmt.Sprintf("table size %d is below min_size_to_sample %d", size, l.cfg.MinSizeToSample)
	}
	if d := l.Diff(); d-float64(n) < l.cfg.MinDiff {
		return fmt.Sprintf("diff %v (inserts %d * samples_per_insert %v - samples %d) minus %d would fall below min_diff %v: %d more insert(s) needed",
			d, l.inserts, l.cfg.SamplesPerInsert, l.samples, n, l.cfg.MinDiff, l.insertsNeeded(n))
	}
	return ""
}

// InsertBlockedReason explains why an insert of n is not allowed, or returns
// "" if it is.
func (l *Limiter) InsertBlockedReason(n int64) string {
	if l.CanInsert(n) {
		return ""
	}
	return fmt.Sprintf("diff after insert %v (inserts %d * samples_per_insert %v - samples %d) would exceed max_diff %v: samples must catch up",
		l.diffAfterInserts(n), l.inserts+n, l.cfg.SamplesPerInsert, l.samples, l.cfg.MaxDiff)
}

// insertsNeeded returns how many inserts would let a sample of n through
// the min_diff bound.
func (l *Limiter) insertsNeeded(n int64) int64 {
	short := l.cfg.MinDiff + float64(n) - l.Diff()
	k := int64(short / l.cfg.SamplesPerInsert)
	for float64(k)*l.cfg.SamplesPerInsert < short {
		k++
	}
	return k
}
