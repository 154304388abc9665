// Package ratelimit implements the replay rate limiter: the rule that decides
// whether a table may accept another insert or serve another sample, so that
// actors and learners stay at a chosen ratio of samples per inserted item.
//
// It is not a token bucket and has no notion of time. A Limiter is pure
// state (completed inserts, samples and deletes) plus four parameters:
//
//	diff = inserts*SamplesPerInsert - samples
//	a sample of n is allowed iff size >= MinSizeToSample and diff-n >= MinDiff
//	an insert of n is free while inserts+n-deletes <= MinSizeToSample,
//	else allowed iff (inserts+n)*SamplesPerInsert - samples <= MaxDiff
//
// The constructors give the common shapes: MinSize, SampleToInsertRatio (and
// SampleToInsertRatioRange), Queue, Stack and the general New. They validate
// their arguments and say what is wrong.
//
// A Limiter is not safe for concurrent use; the table that owns it holds its
// lock around every call and does the blocking.
//
// # Example
//
//	cfg, err := ratelimit.SampleToInsertRatio(4, 1000, 400)
//	if err != nil { ... }
//	lim, _ := ratelimit.NewLimiter(cfg)
//	if lim.CanInsert(1) { lim.Insert(1) }
package ratelimit
