// Package gctune bounds the garbage collector's heap headroom for
// processes whose heap is mostly long-lived payload, such as a replay server
// holding gigabytes of chunks.
//
// Go's default GOGC=100 lets the heap grow to twice the live data before
// collecting, so a server holding 1 GiB of items can reach 2 GiB of RSS.
// Marking such a heap is cheap (payloads are pointer-free byte slices), so
// collecting more often costs little. Tune adjusts the GC percentage as the
// live heap changes so that the headroom stays near a fixed number of
// bytes, between 10% and 100% of the live heap:
//
//	stop := gctune.Start(128 << 20)
//	defer stop()
package gctune

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Bounds of the GC percentage Start sets.
const (
	MinPercent = 10
	MaxPercent = 100
)

// Percent returns the GC percentage that gives live bytes of heap about
// headroom bytes to grow before the next collection, clamped to
// [MinPercent, MaxPercent].
func Percent(live, headroom uint64) int {
	if live == 0 {
		return MaxPercent
	}
	p := headroom * 100 / live
	return int(min(max(p, MinPercent), MaxPercent))
}

// Start adjusts the GC percentage every interval (and at once) from the
// live heap measured by the runtime, until the returned stop function is
// called, which restores the previous percentage.
func Start(headroom uint64) (stop func()) {
	return start(headroom, time.Second)
}

func start(headroom uint64, interval time.Duration) func() {
	prev := debug.SetGCPercent(MaxPercent)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		last := -1
		for {
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 {
				if p := Percent(sample[0].Value.Uint64(), headroom); p != last {
					debug.SetGCPercent(p)
					last = p
				}
			}
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			debug.SetGCPercent(prev)
		})
	}
}
