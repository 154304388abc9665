package ratelimit

import (
	"errors"
	"strings"
	"testing"
)

func TestConstructorsValidation(t *testing.T) {
	tests := []struct {
		name    string
		build   func() (Config, error)
		wantErr string // substring; "" means valid
	}{
		{"MinSize(1)", func() (Config, error) { return MinSize(1) }, ""},
		{"MinSize(0)", func() (Config, error) { return MinSize(0) }, "min_size_to_sample must be >= 1"},
		{"MinSize(-3)", func() (Config, error) { return MinSize(-3) }, "min_size_to_sample must be >= 1"},
		{"ratio ok", func() (Config, error) { return SampleToInsertRatio(4, 100, 40) }, ""},
		{"ratio spi 0", func() (Config, error) { return SampleToInsertRatio(0, 100, 40) }, "samples_per_insert must be finite and > 0"},
		{"ratio spi negative", func() (Config, error) { return SampleToInsertRatio(-1, 100, 40) }, "samples_per_insert must be finite and > 0"},
		{"ratio min size 0", func() (Config, error) { return SampleToInsertRatio(1, 0, 40) }, "min_size_to_sample must be >= 1"},
		{"ratio buffer negative", func() (Config, error) { return SampleToInsertRatio(1, 10, -1) }, "error_buffer must be >= 0"},
		// Window 2*buffer must be >= 2*max(1, spi).
		{"ratio buffer too small spi<1", func() (Config, error) { return SampleToInsertRatio(0.5, 10, 0.9) }, "must be at least 2*max(1, samples_per_insert) = 2"},
		{"ratio buffer edge spi<1", func() (Config, error) { return SampleToInsertRatio(0.5, 10, 1) }, ""},
		{"ratio buffer too small spi>1", func() (Config, error) { return SampleToInsertRatio(8, 10, 7.5) }, "= 16"},
		{"ratio buffer edge spi>1", func() (Config, error) { return SampleToInsertRatio(8, 10, 8) }, ""},
		{"range ok", func() (Config, error) { return SampleToInsertRatioRange(1.5, 2, -1, 3) }, ""},
		{"range min above offset", func() (Config, error) { return SampleToInsertRatioRange(1, 2, 3, 10) }, "sampling could never start"},
		{"range narrow", func() (Config, error) { return SampleToInsertRatioRange(3, 2, 0, 5) }, "= 6"},
		{"range inverted", func() (Config, error) { return SampleToInsertRatioRange(1, 2, 3, -1) }, "greater than max_diff"},
		{"queue", func() (Config, error) { return Queue(10) }, ""},
		{"queue 0", func() (Config, error) { return Queue(0) }, "Queue(0)"},
		{"stack 0", func() (Config, error) { return Stack(0) }, "Stack(0)"},
		{"general ok", func() (Config, error) { return New(2, 5, -10, 10) }, ""},
		{"general NaN diff", func() (Config, error) { return New(2, 5, nan(), 10) }, "must not be NaN"},
		{"general inf spi", func() (Config, error) { return New(inf(), 5, -10, 10) }, "samples_per_insert"},
		{"general inverted", func() (Config, error) { return New(1, 1, 5, 4) }, "min_diff 5 is greater than max_diff 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.build()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want one containing %q", tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not match ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestConstructorShapes(t *testing.T) {
	tests := []struct {
		name string
		got  Config
		want Config
	}{
		{"MinSize", Must(MinSize(7)), Config{1, 7, -Unbounded, Unbounded}},
		{"Ratio", Must(SampleToInsertRatio(1.5, 2, 2)), Config{1.5, 2, 1, 5}},
		{"Queue", Must(Queue(4)), Config{1, 1, 0, 4}},
		{"Stack", Must(Stack(4)), Config{1, 1, 0, 4}},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %+v, want %+v", tt.name, tt.got, tt.want)
		}
	}
}

// step is one operation in a limiter vector: an attempt that must be allowed
// (and is then recorded) or refused.
type step struct {
	op    byte // 'i' insert, 's' sample, 'd' delete
	n     int64
	allow bool
}

func runVector(t *testing.T, cfg Config, steps []step) {
	t.Helper()
	l, err := NewLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		switch s.op {
		case 'i':
			if got := l.CanInsert(s.n); got != s.allow {
				t.Fatalf("step %d: CanInsert(%d) = %v, want %v (state %+v, diff %v)", i, s.n, got, s.allow, l.State(), l.Diff())
			}
			if got := l.InsertBlockedReason(s.n) == ""; got != s.allow {
				t.Fatalf("step %d: InsertBlockedReason disagrees with CanInsert", i)
			}
			if s.allow {
				l.Insert(s.n)
			}
		case 's':
			if got := l.CanSample(s.n); got != s.allow {
				t.Fatalf("step %d: CanSample(%d) = %v, want %v (state %+v, diff %v)", i, s.n, got, s.allow, l.State(), l.Diff())
			}
			if got := l.SampleBlockedReason(s.n) == ""; got != s.allow {
				t.Fatalf("step %d: SampleBlockedReason disagrees with CanSample", i)
			}
			if s.allow {
				l.Sample(s.n)
			}
		case 'd':
			l.Delete(s.n)
		}
	}
}

func TestVectors(t *testing.T) {
	t.Run("ratio spi=1.5 min=2 diff=[-1,3]", func(t *testing.T) {
		// After 1 insert a sample blocks; after 2 it succeeds; a 3rd insert
		// blocks (3*1.5-0 = 4.5 > 3) until a sample brings it to 3.5 ... and
		// two samples bring it to 2.5 <= 3.
		runVector(t, Must(SampleToInsertRatioRange(1.5, 2, -1, 3)), []step{
			{'s', 1, false},
			{'i', 1, true},
			{'s', 1, false},
			{'i', 1, true},
			{'i', 1, false},
			{'s', 1, true},
			{'i', 1, false},
			{'s', 1, true},
			{'i', 1, true},
		})
	})
	t.Run("min size", func(t *testing.T) {
		runVector(t, Must(MinSize(3)), []step{
			{'i', 2, true}, {'s', 1, false}, {'i', 1, true}, {'s', 100, true}, {'i', 1000, true},
			{'d', 1002, false}, {'s', 1, false}, // size 1 < 3 again
		})
	})
	t.Run("queue", func(t *testing.T) {
		runVector(t, Must(Queue(2)), []step{
			{'s', 1, false}, {'i', 1, true}, {'i', 1, true}, {'i', 1, false},
			{'s', 1, true}, {'d', 1, false}, {'i', 1, true}, {'s', 1, true}, {'d', 1, false},
			{'s', 1, true}, {'d', 1, false}, {'s', 1, false},
		})
	})
	t.Run("deletes only affect size", func(t *testing.T) {
		runVector(t, Must(New(1, 2, 0, 10)), []step{
			{'i', 4, true}, {'s', 1, true}, {'d', 3, false},
			{'s', 1, false}, // size 1 < 2
			{'i', 1, true},  // free: inserts+1-deletes = 2 <= 2
			{'s', 1, true},
		})
	})
	t.Run("batch sample needs the whole batch", func(t *testing.T) {
		runVector(t, Must(SampleToInsertRatio(1, 1, 5)), []step{
			{'i', 3, true}, {'s', 7, true}, {'s', 1, false}, {'i', 1, true}, {'s', 2, false}, {'s', 1, true},
		})
	})
}

func TestResetAndRestore(t *testing.T) {
	l, _ := NewLimiter(Must(MinSize(1)))
	l.Insert(5)
	l.Sample(3)
	l.Delete(2)
	if got, want := l.State(), (State{5, 3, 2}); got != want {
		t.Fatalf("State = %+v, want %+v", got, want)
	}
	m, _ := NewLimiter(l.Config())
	m.Restore(l.State())
	if m.State() != l.State() || m.Size() != 3 {
		t.Fatalf("restore: %+v size %d", m.State(), m.Size())
	}
	l.Reset()
	if l.State() != (State{}) {
		t.Fatalf("after reset: %+v", l.State())
	}
}

func TestBlockedReasons(t *testing.T) {
	l, _ := NewLimiter(Must(SampleToInsertRatio(2, 10, 4)))
	if r := l.SampleBlockedReason(1); !strings.Contains(r, "table size 0 is below min_size_to_sample 10") {
		t.Errorf("reason = %q", r)
	}
	l.Insert(10) // diff 20, lo 16
	l.Sample(4)  // diff 16
	if r := l.SampleBlockedReason(1); !strings.Contains(r, "below min_diff 16") || !strings.Contains(r, "1 more insert(s) needed") {
		t.Errorf("reason = %q", r)
	}
	l.Sample(0)
	if r := l.InsertBlockedReason(5); !strings.Contains(r, "diff after insert 26") || !strings.Contains(r, "would exceed max_diff 24") {
		t.Errorf("insert reason = %q", r)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		c    Config
		want string
	}{
		{Must(MinSize(3)), "MinSize(3)"},
		{Must(Queue(5)), "Queue(5)"},
		{Must(SampleToInsertRatio(1.5, 2, 2)), "RateLimiter(samples_per_insert=1.5, min_size_to_sample=2, min_diff=1, max_diff=5)"},
		{Must(New(1, 1, -Unbounded, 3)), "RateLimiter(samples_per_insert=1, min_size_to_sample=1, min_diff=-inf, max_diff=3)"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestMustPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Must did not panic on error")
		}
	}()
	Must(MinSize(0))
}

func nan() float64 { z := 0.0; return z / z }
func inf() float64 { z := 0.0; return 1 / z }
