// Package sampler provides selectors: the algorithms a replay table uses to
// choose which item to sample next and, as a remover, which item to evict
// when the table is full.
//
// A [Selector] holds a set of item keys, each with a priority, and picks one
// key on demand without removing it. Sample also reports the probability
// that the returned key was the one picked, which learners use for
// importance weighting. Selectors know nothing about item data; the table
// keeps the keys of its selectors in step with its items.
//
// # Kinds
//
// The kinds match DeepMind Reverb's selectors:
//
//   - [Uniform]: every key with probability 1/N; priorities ignored.
//   - [Prioritized]: key k with probability p_k^a / sum_j p_j^a for a
//     priority exponent a; keys with priority 0 are never picked unless all
//     priorities are 0, in which case the pick is uniform (1/N).
//   - [FIFO] and [LIFO]: the oldest or newest inserted key; probability 1.
//   - [MinHeap] and [MaxHeap]: the lowest or highest priority, ties going to
//     the least recently inserted or updated key; probability 1.
//
// A [Spec] names a kind (and the exponent for Prioritized); it is what table
// options, config files and checkpoints store, and [New] builds a selector
// from it. [ParseKind] reads the names used in config files.
//
// # Errors
//
// Priorities must be finite and >= 0 for every kind, even those that ignore
// them. Insert of a present key returns [ErrKeyExists]; Update and Delete of
// an absent key return [ErrKeyNotFound]; a bad priority returns
// [ErrInvalidPriority]; Sample on an empty selector returns [ErrEmpty]. A
// call that fails leaves the selector unchanged. Errors are wrapped with the
// offending key or value; test them with errors.Is.
//
// # Randomness
//
// Uniform and Prioritized draw from their own PCG generator (math/rand/v2)
// seeded from the seed given to their constructor or to New, never from a
// global source: equal seeds and equal call sequences give equal samples.
//
// # Concurrency
//
// Selectors are not safe for concurrent use and take no locks. The owner,
// normally a table holding its own mutex, must serialise every call,
// including Sample, which advances the random generator.
//
// # Performance
//
// Sample is O(1) for Uniform, FIFO, LIFO and the heaps and O(log N) for
// Prioritized; Insert, Update and Delete are O(1) for Uniform, FIFO and LIFO
// and O(log N) for Prioritized and the heaps. Sample does not allocate. The
// Prioritized sum tree (internal/sumtree) is 16-ary with each leaf's key
// stored beside its weight, so drawing from a million keys touches about one
// uncached memory block.
package sampler
