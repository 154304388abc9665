package sampler

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// Benchmarks run every kind at three sizes. Keys are scattered over the
// uint64 range and priorities drawn from an exponential distribution, both
// from fixed seeds. Operations that need an existing key pick it at random,
// so large sizes measure cache misses honestly rather than a hot subset.

var benchSizes = []int{1_000, 100_000, 1_000_000}

var benchSpecs = []Spec{
	UniformSpec(),
	PrioritizedSpec(0.6),
	FIFOSpec(),
	LIFOSpec(),
	MinHeapSpec(),
	MaxHeapSpec(),
}

// benchRing is the length of the precomputed key and priority sequences.
const benchRing = 1 << 16

// benchKey maps 0, 1, 2, ... to scattered keys (a bijection).
func benchKey(i int) uint64 { return uint64(i) * 0x9e3779b97f4a7c15 }

// benchData is the shared random input of the benchmarks.
type benchData struct {
	prios []float64 // benchRing priorities
	picks []int     // benchRing random indices in [0, size)
}

func newBenchData(size int) benchData {
	r := rand.New(rand.NewPCG(uint64(size), 1))
	d := benchData{prios: make([]float64, benchRing), picks: make([]int, benchRing)}
	for i := range benchRing {
		d.prios[i] = r.ExpFloat64()
		d.picks[i] = r.IntN(size)
	}
	return d
}

// fill builds a selector holding keys benchKey(0..size-1).
func fill(b *testing.B, spec Spec, size int, d benchData) Selector {
	s := mustNew(b, spec, 1)
	for i := range size {
		if err := s.Insert(benchKey(i), d.prios[i%benchRing]); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// forEachBench runs f as a sub-benchmark per kind and size.
func forEachBench(b *testing.B, f func(b *testing.B, spec Spec, size int, d benchData)) {
	for _, spec := range benchSpecs {
		for _, size := range benchSizes {
			d := newBenchData(size)
			b.Run("kind="+spec.Kind.String()+"/size="+strconv.Itoa(size), func(b *testing.B) {
				f(b, spec, size, d)
			})
		}
	}
}

// BenchmarkInsert measures one Insert of a new key plus one Delete of the
// oldest key, which keeps the size steady (a replay buffer evicting FIFO).
func BenchmarkInsert(b *testing.B) {
	forEachBench(b, func(b *testing.B, spec Spec, size int, d benchData) {
		s := fill(b, spec, size, d)
		next := size
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Insert(benchKey(next), d.prios[next&(benchRing-1)]); err != nil {
				b.Fatal(err)
			}
			if err := s.Delete(benchKey(next - size)); err != nil {
				b.Fatal(err)
			}
			next++
		}
	})
}

// BenchmarkSample measures Sample.
func BenchmarkSample(b *testing.B) {
	forEachBench(b, func(b *testing.B, spec Spec, size int, d benchData) {
		s := fill(b, spec, size, d)
		var sink uint64
		b.ReportAllocs()
		for b.Loop() {
			got, err := s.Sample()
			if err != nil {
				b.Fatal(err)
			}
			sink += got.Key
		}
		_ = sink
	})
}

// BenchmarkUpdate measures Update of a random present key to a random
// priority.
func BenchmarkUpdate(b *testing.B) {
	forEachBench(b, func(b *testing.B, spec Spec, size int, d benchData) {
		s := fill(b, spec, size, d)
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			j := i & (benchRing - 1)
			if err := s.Update(benchKey(d.picks[j]), d.prios[(j*7+3)&(benchRing-1)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
