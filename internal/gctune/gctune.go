// Package gctune bounds the garbage collector's heap headroom for
// processes whose heap is mostly long-lived payload, such as a replay server
// holding gigabytes of chunks.
//
// Go's default GOGC=100 lets the heap grow to twice the live data before
// collecting, so a server holding 1 GiB of items can reach 2 GiB of RSS.
// Marking such a heap is cheap when it holds few pointers per byte (large
// items: payloads are pointer-free byte slices), so collecting more often
// costs little. Start adjusts the GC percentage as the live heap changes so
// that the headroom stays near a fixed number of bytes, between 10% and
// 100% of the live heap:
//
//	stop := gctune.Start(128 << 20)
//	defer stop()
//
// Small items carry many pointers per byte, and then frequent collections
// are not cheap: when collecting takes more than 15% of the CPU the process
// uses, Start doubles the headroom, up to MaxGrowth times the one asked
// for, and halves it back once collecting takes less than 8%.
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

// MaxGrowth bounds how far Start lets the headroom grow past the one asked
// for when collecting is expensive.
const MaxGrowth = 4

// Shares of the CPU spent collecting above which Start grows the headroom
// and below which it shrinks it back.
const (
	highGCShare = 0.15
	lowGCShare  = 0.08
)

// nextHeadroom returns the headroom for the next interval: cur doubled (at
// most base*MaxGrowth) if collecting took more than highGCShare of the CPU
// the process used, halved (at least base) if less than lowGCShare, else
// unchanged.
func nextHeadroom(cur, base uint64, gcShare float64) uint64 {
	switch {
	case gcShare > highGCShare:
		return min(cur*2, base*MaxGrowth)
	case gcShare < lowGCShare:
		return max(cur/2, base)
	}
	return cur
}

// cpuSeconds sums the samples: the first is user time, the others GC time.
func cpuSeconds(samples []metrics.Sample) (user, gc float64, ok bool) {
	for i, s := range samples {
		if s.Value.Kind() != metrics.KindFloat64 {
			return 0, 0, false
		}
		if i == 0 {
			user = s.Value.Float64()
		} else {
			gc += s.Value.Float64()
		}
	}
	return user, gc, true
}

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
// live heap measured by the runtime and the share of CPU collecting takes,
// until the returned stop function is called, which restores the previous
// percentage.
func Start(headroom uint64) (stop func()) {
	return start(headroom, time.Second)
}

func start(base uint64, interval time.Duration) func() {
	prev := debug.SetGCPercent(MaxPercent)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The GC's CPU time without its idle-time workers, which only use
		// processors that would otherwise idle.
		samples := []metrics.Sample{
			{Name: "/gc/heap/live:bytes"},
			{Name: "/cpu/classes/user:cpu-seconds"},
			{Name: "/cpu/classes/gc/mark/assist:cpu-seconds"},
			{Name: "/cpu/classes/gc/mark/dedicated:cpu-seconds"},
			{Name: "/cpu/classes/gc/pause:cpu-seconds"},
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		headroom, last := base, -1
		first := true
		var lastGC, lastUser float64
		for {
			metrics.Read(samples)
			if user, gc, ok := cpuSeconds(samples[1:]); ok {
				if busy := (gc - lastGC) + (user - lastUser); !first && busy > 0 {
					headroom = nextHeadroom(headroom, base, (gc-lastGC)/busy)
				}
				lastGC, lastUser, first = gc, user, false
			}
			if samples[0].Value.Kind() == metrics.KindUint64 {
				if p := Percent(samples[0].Value.Uint64(), headroom); p != last {
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
