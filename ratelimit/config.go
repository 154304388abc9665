package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ErrInvalidConfig is returned (wrapped, with the reason) by the constructors
// and by Config.Validate.
var ErrInvalidConfig = errors.New("ratelimit: invalid config")

// Unbounded is the diff bound used by MinSize: the diff never limits.
const Unbounded = math.MaxFloat64

// Config is the fixed part of a limiter: its four parameters. The zero value
// is not valid; build one with a constructor.
type Config struct {
	// SamplesPerInsert is the target number of samples per inserted item.
	SamplesPerInsert float64 `json:"samples_per_insert"`
	// MinSizeToSample is the table size below which sampling blocks; inserts
	// are free while the size stays at or below it.
	MinSizeToSample int64 `json:"min_size_to_sample"`
	// MinDiff and MaxDiff bound diff = inserts*SamplesPerInsert - samples:
	// a sample of n is allowed while diff-n >= MinDiff, an insert while the
	// diff after it is <= MaxDiff.
	MinDiff float64 `json:"min_diff"`
	MaxDiff float64 `json:"max_diff"`
}

// New returns the general form of a limiter after validating it:
// samplesPerInsert must be finite and > 0, minSizeToSample >= 1 and
// minDiff <= maxDiff (neither NaN).
func New(samplesPerInsert float64, minSizeToSample int64, minDiff, maxDiff float64) (Config, error) {
	c := Config{SamplesPerInsert: samplesPerInsert, MinSizeToSample: minSizeToSample, MinDiff: minDiff, MaxDiff: maxDiff}
	return c, c.Validate()
}

// MinSize blocks sampling until the table holds at least n items and never
// blocks inserts: (1, n, -Unbounded, +Unbounded).
func MinSize(n int64) (Config, error) {
	c := Config{SamplesPerInsert: 1, MinSizeToSample: n, MinDiff: -Unbounded, MaxDiff: Unbounded}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("MinSize(%d): %w", n, err)
	}
	return c, nil
}

// SampleToInsertRatio keeps the number of samples per insert near
// samplesPerInsert once the table holds minSizeToSample items, allowing the
// diff to drift errorBuffer either way from samplesPerInsert*minSizeToSample.
// It is rejected, as Reverb rejects it, when samplesPerInsert <= 0,
// minSizeToSample < 1, or the window is narrower than 2*max(1,
// samplesPerInsert) (then neither side could ever make progress).
func SampleToInsertRatio(samplesPerInsert float64, minSizeToSample int64, errorBuffer float64) (Config, error) {
	if math.IsNaN(errorBuffer) || errorBuffer < 0 {
		return Config{}, fmt.Errorf("%w: SampleToInsertRatio: error_buffer must be >= 0, got %v", ErrInvalidConfig, errorBuffer)
	}
	offset := samplesPerInsert * float64(minSizeToSample)
	return SampleToInsertRatioRange(samplesPerInsert, minSizeToSample, offset-errorBuffer, offset+errorBuffer)
}

// SampleToInsertRatioRange is SampleToInsertRatio with explicit diff bounds
// (Reverb's tuple error buffer). It additionally rejects minDiff greater
// than samplesPerInsert*minSizeToSample, where sampling could never start.
func SampleToInsertRatioRange(samplesPerInsert float64, minSizeToSample int64, minDiff, maxDiff float64) (Config, error) {
	c := Config{SamplesPerInsert: samplesPerInsert, MinSizeToSample: minSizeToSample, MinDiff: minDiff, MaxDiff: maxDiff}
	wrap := func(err error) (Config, error) {
		return Config{}, fmt.Errorf("SampleToInsertRatio(samples_per_insert=%v, min_size_to_sample=%d, diff=[%v, %v]): %w",
			samplesPerInsert, minSizeToSample, minDiff, maxDiff, err)
	}
	if err := c.Validate(); err != nil {
		return wrap(err)
	}
	if need := 2 * math.Max(1, samplesPerInsert); maxDiff-minDiff < need {
		return wrap(fmt.Errorf("%w: max_diff - min_diff = %v must be at least 2*max(1, samples_per_insert) = %v, or inserts and samples would deadlock",
			ErrInvalidConfig, maxDiff-minDiff, need))
	}
	if offset := samplesPerInsert * float64(minSizeToSample); minDiff > offset {
		return wrap(fmt.Errorf("%w: min_diff %v is greater than samples_per_insert*min_size_to_sample = %v, so sampling could never start",
			ErrInvalidConfig, minDiff, offset))
	}
	return c, nil
}

// Queue makes a table behave as a bounded queue of at most n items: use it
// with FIFO sampler and remover and max_times_sampled 1. Each item is
// sampled exactly once; inserts block while n items wait. (1, 1, 0, n).
func Queue(n int64) (Config, error) { return queueLike("Queue", n) }

// Stack is Queue for LIFO selectors: the newest item is sampled first.
func Stack(n int64) (Config, error) { return queueLike("Stack", n) }

func queueLike(name string, n int64) (Config, error) {
	if n < 1 {
		return Config{}, fmt.Errorf("%s(%d): %w: size must be >= 1", name, n, ErrInvalidConfig)
	}
	return Config{SamplesPerInsert: 1, MinSizeToSample: 1, MinDiff: 0, MaxDiff: float64(n)}, nil
}

// Must returns c, panicking if err is non-nil. It is meant for limiters with
// constant arguments: ratelimit.Must(ratelimit.MinSize(1)).
func Must(c Config, err error) Config {
	if err != nil {
		panic(err)
	}
	return c
}

// Validate checks the parameters every limiter needs.
func (c Config) Validate() error {
	switch {
	case math.IsNaN(c.SamplesPerInsert) || math.IsInf(c.SamplesPerInsert, 0) || c.SamplesPerInsert <= 0:
		return fmt.Errorf("%w: samples_per_insert must be finite and > 0, got %v", ErrInvalidConfig, c.SamplesPerInsert)
	case c.MinSizeToSample < 1:
		return fmt.Errorf("%w: min_size_to_sample must be >= 1, got %d", ErrInvalidConfig, c.MinSizeToSample)
	case math.IsNaN(c.MinDiff) || math.IsNaN(c.MaxDiff):
		return fmt.Errorf("%w: min_diff and max_diff must not be NaN", ErrInvalidConfig)
	case c.MinDiff > c.MaxDiff:
		return fmt.Errorf("%w: min_diff %v is greater than max_diff %v", ErrInvalidConfig, c.MinDiff, c.MaxDiff)
	}
	return nil
}

// String describes the limiter in the form that built it when it matches one
// of the named constructors, e.g. "MinSize(1)", and the general form
// "RateLimiter(samples_per_insert=.., min_size_to_sample=.., min_diff=.., max_diff=..)"
// otherwise.
func (c Config) String() string {
	f := func(v float64) string {
		switch {
		case v >= Unbounded:
			return "+inf"
		case v <= -Unbounded:
			return "-inf"
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	switch {
	case c.SamplesPerInsert == 1 && c.MinDiff <= -Unbounded && c.MaxDiff >= Unbounded:
		return fmt.Sprintf("MinSize(%d)", c.MinSizeToSample)
	case c.SamplesPerInsert == 1 && c.MinSizeToSample == 1 && c.MinDiff == 0 && c.MaxDiff >= 1 && c.MaxDiff == math.Trunc(c.MaxDiff):
		return fmt.Sprintf("Queue(%s)", f(c.MaxDiff))
	}
	return fmt.Sprintf("RateLimiter(samples_per_insert=%s, min_size_to_sample=%d, min_diff=%s, max_diff=%s)",
		f(c.SamplesPerInsert), c.MinSizeToSample, f(c.MinDiff), f(c.MaxDiff))
}
