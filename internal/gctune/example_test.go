package gctune_test

import (
	"fmt"

	"github.com/recall-rl/recall/internal/gctune"
)

// The GC percentage that keeps about 128 MiB of headroom: Go's default for
// small heaps, 12% for a server holding 1 GiB, and never below 10%.
func ExamplePercent() {
	const mib = 1 << 20
	for _, live := range []uint64{64 * mib, 1024 * mib, 8192 * mib} {
		fmt.Printf("%5d MiB live: GOGC=%d\n", live/mib, gctune.Percent(live, 128*mib))
	}
	// Output:
	//    64 MiB live: GOGC=100
	//  1024 MiB live: GOGC=12
	//  8192 MiB live: GOGC=10
}
