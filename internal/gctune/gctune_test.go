package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		live, headroom uint64
		want           int
	}{
		{0, 128 * mib, 100},
		{64 * mib, 128 * mib, 100},
		{256 * mib, 128 * mib, 50},
		{1024 * mib, 128 * mib, 12},
		{16 * 1024 * mib, 128 * mib, 10},
	}
	for _, tt := range tests {
		if got := Percent(tt.live, tt.headroom); got != tt.want {
			t.Errorf("Percent(%d MiB, %d MiB) = %d, want %d", tt.live/mib, tt.headroom/mib, got, tt.want)
		}
	}
}

func TestStartAdjustsAndRestores(t *testing.T) {
	before := debug.SetGCPercent(77)
	defer debug.SetGCPercent(before)
	keep := make([]byte, 64<<20) // 64 MiB live
	runtime.GC()
	stop := start(8<<20, 10*time.Millisecond) // 8 MiB headroom: 12%
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := currentPercent()
		if p >= MinPercent && p <= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GC percent %d not lowered for a 64 MiB heap", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	stop() // idempotent
	if p := debug.SetGCPercent(77); p != 77 {
		t.Fatalf("percent after stop = %d, want the previous 77", p)
	}
	runtime.KeepAlive(keep)
}

// currentPercent reads the GC percentage without setting it, so it cannot
// undo a change Start's goroutine makes at the same moment.
func currentPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

func TestNextHeadroom(t *testing.T) {
	const base = 128
	tests := []struct {
		cur     uint64
		gcShare float64
		want    uint64
	}{
		{base, 0.30, 2 * base},             // expensive: grow
		{2 * base, 0.30, 4 * base},         // and again
		{4 * base, 0.50, MaxGrowth * base}, // capped
		{4 * base, 0.10, 4 * base},         // in between: keep
		{4 * base, 0.05, 2 * base},         // cheap: shrink back
		{base, 0.01, base},                 // never below the base
		{base, 0.10, base},
	}
	for _, tt := range tests {
		if got := nextHeadroom(tt.cur, base, tt.gcShare); got != tt.want {
			t.Errorf("nextHeadroom(%d, %d, %.2f) = %d, want %d", tt.cur, base, tt.gcShare, got, tt.want)
		}
	}
}
