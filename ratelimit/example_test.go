package ratelimit_test

import (
	"fmt"

	"github.com/recall-rl/recall/ratelimit"
)

// A limiter that keeps learners at 1.5 samples per inserted item once two
// items are in the table, with a small error buffer.
func Example() {
	cfg, err := ratelimit.SampleToInsertRatioRange(1.5, 2, -1, 3)
	if err != nil {
		panic(err)
	}
	lim, _ := ratelimit.NewLimiter(cfg)

	lim.Insert(1)
	fmt.Println("sample after 1 insert:", lim.CanSample(1))
	lim.Insert(1)
	fmt.Println("sample after 2 inserts:", lim.CanSample(1))
	fmt.Println("3rd insert:", lim.CanInsert(1))
	fmt.Println("why:", lim.InsertBlockedReason(1))
	// Output:
	// sample after 1 insert: false
	// sample after 2 inserts: true
	// 3rd insert: false
	// why: diff after insert 4.5 (inserts 3 * samples_per_insert 1.5 - samples 0) would exceed max_diff 3: samples must catch up
}
