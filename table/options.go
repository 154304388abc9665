package table

import (
	"errors"
	"fmt"
	"time"

	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
)

// DefaultMaxSize is the max size a table gets when Options.MaxSize is 0.
const DefaultMaxSize = 1_000_000

// Options configure a Table. The zero value of every field except Name has a
// default, applied by EnsureDefaults; New applies defaults and validates.
type Options struct {
	// Name identifies the table on a server. Required.
	Name string
	// Sampler picks the items returned by Sample. Default: uniform.
	Sampler sampler.Spec
	// Remover picks the item evicted when the table is over MaxSize.
	// Default: FIFO.
	Remover sampler.Spec
	// MaxSize is the number of items the table holds before evicting.
	// Default: DefaultMaxSize.
	MaxSize int64
	// MaxTimesSampled deletes an item once it has been sampled this many
	// times (after returning that sample); <= 0 means unlimited.
	MaxTimesSampled int32
	// RateLimiter decides when inserts and samples may proceed.
	// Default: MinSize(1).
	RateLimiter ratelimit.Config
	// Signature, when set, is checked against every inserted item.
	Signature *Signature
	// Seed seeds the sampler's and remover's random sources; 0 picks a
	// random seed. Equal seeds give equal sample sequences.
	Seed uint64
	// Chunks is the store the table's chunk references belong to. Tables of
	// one server share a store. Default: a new store for this table.
	Chunks *ChunkStore
	// Now returns the time recorded as an item's insertion time.
	// Default: time.Now.
	Now func() time.Time
}

// ErrInvalidOptions is returned (wrapped, with the reason) by New and
// Options.Validate.
var ErrInvalidOptions = errors.New("table: invalid options")

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Sampler.Kind == sampler.KindInvalid {
		o.Sampler = sampler.UniformSpec()
	}
	if o.Remover.Kind == sampler.KindInvalid {
		o.Remover = sampler.FIFOSpec()
	}
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.RateLimiter == (ratelimit.Config{}) {
		o.RateLimiter = ratelimit.Must(ratelimit.MinSize(1))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate reports the first invalid field, naming it.
func (o *Options) Validate() error {
	wrap := func(field string, err error) error {
		return fmt.Errorf("%w: table %q: %s: %v", ErrInvalidOptions, o.Name, field, err)
	}
	if o.Name == "" {
		return fmt.Errorf("%w: name is required", ErrInvalidOptions)
	}
	if err := o.Sampler.Validate(); err != nil {
		return wrap("sampler", err)
	}
	if err := o.Remover.Validate(); err != nil {
		return wrap("remover", err)
	}
	if o.MaxSize < 1 {
		return wrap("max_size", fmt.Errorf("must be >= 1, got %d", o.MaxSize))
	}
	if err := o.RateLimiter.Validate(); err != nil {
		return wrap("rate_limiter", err)
	}
	if o.Signature != nil {
		if err := o.Signature.Validate(); err != nil {
			return wrap("signature", err)
		}
	}
	return nil
}

// QueueOptions returns options for a table that behaves as a FIFO queue of at
// most size items, each sampled exactly once (Reverb's Table.queue).
func QueueOptions(name string, size int64) (Options, error) {
	lim, err := ratelimit.Queue(size)
	if err != nil {
		return Options{}, err
	}
	return Options{Name: name, Sampler: sampler.FIFOSpec(), Remover: sampler.FIFOSpec(), MaxSize: size, MaxTimesSampled: 1, RateLimiter: lim}, nil
}

// StackOptions is QueueOptions with LIFO order (Reverb's Table.stack).
func StackOptions(name string, size int64) (Options, error) {
	lim, err := ratelimit.Stack(size)
	if err != nil {
		return Options{}, err
	}
	return Options{Name: name, Sampler: sampler.LIFOSpec(), Remover: sampler.LIFOSpec(), MaxSize: size, MaxTimesSampled: 1, RateLimiter: lim}, nil
}
