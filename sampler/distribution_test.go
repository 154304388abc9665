package sampler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The chi-square tests draw a fixed number of samples with fixed seeds and
// compare Pearson's statistic with the critical value at significance
// chiAlpha. They are deterministic, so they either always pass or always
// fail for a given implementation; a correct sampler fails such a test with
// probability chiAlpha over the choice of seed.
const (
	chiDraws = 200_000
	chiAlpha = 0.001
)

// chiSquareCritical returns the upper-alpha critical value of the chi-square
// distribution with df degrees of freedom, by the Wilson–Hilferty
// approximation: (X/df)^(1/3) is close to normal with mean 1-2/(9df) and
// variance 2/(9df).
func chiSquareCritical(df int, alpha float64) float64 {
	z := math.Sqrt2 * math.Erfinv(1-2*alpha) // upper-alpha standard normal quantile
	v := 2 / (9 * float64(df))
	return float64(df) * math.Pow(1-v+z*math.Sqrt(v), 3)
}

func TestChiSquareCritical(t *testing.T) {
	// Table values at alpha = 0.001.
	for df, want := range map[int]float64{10: 29.588, 30: 59.703, 99: 148.230, 100: 149.449} {
		got := chiSquareCritical(df, 0.001)
		if math.Abs(got-want)/want > 0.01 {
			t.Errorf("critical(df=%d) = %.3f, want about %.3f", df, got, want)
		}
	}
}

// chiSquare returns Pearson's statistic and the degrees of freedom for counts
// against expected probabilities. Keys with zero expected probability must
// have zero counts (reported as an error) and do not count as categories.
func chiSquare(counts map[uint64]int, probs map[uint64]float64, draws int) (stat float64, df int, err error) {
	for k, c := range counts {
		if probs[k] == 0 && c > 0 {
			return 0, 0, fmt.Errorf("key %d with expected probability 0 sampled %d times", k, c)
		}
	}
	for k, p := range probs {
		if p == 0 {
			continue
		}
		e := p * float64(draws)
		if e < 5 {
			return 0, 0, fmt.Errorf("key %d: expected count %.2f < 5; the test is miscalibrated", k, e)
		}
		d := float64(counts[k]) - e
		stat += d * d / e
		df++
	}
	return stat, df - 1, nil
}

// drawAndTest samples chiDraws times, checks each reported probability
// against probs, and runs the chi-square test.
func drawAndTest(t *testing.T, s Selector, probs map[uint64]float64) {
	t.Helper()
	counts := map[uint64]int{}
	for range chiDraws {
		got := mustSample(t, s)
		want, ok := probs[got.Key]
		if !ok {
			t.Fatalf("sampled unknown key %d", got.Key)
		}
		if math.Abs(got.Probability-want) > 1e-12*want {
			t.Fatalf("key %d: probability %v, want %v", got.Key, got.Probability, want)
		}
		counts[got.Key]++
	}
	stat, df, err := chiSquare(counts, probs, chiDraws)
	if err != nil {
		t.Fatal(err)
	}
	crit := chiSquareCritical(df, chiAlpha)
	t.Logf("chi-square %.2f, df %d, critical %.2f", stat, df, crit)
	if stat > crit {
		t.Fatalf("chi-square %.2f > critical %.2f (df %d, alpha %v)", stat, crit, df, chiAlpha)
	}
}

// TestChiSquareDetectsBias checks that the test above can fail: uniform
// draws tested against a mildly skewed expectation must be rejected.
func TestChiSquareDetectsBias(t *testing.T) {
	s := NewUniform(1)
	probs := map[uint64]float64{}
	for k := range uint64(50) {
		mustInsert(t, s, k, 1)
		probs[k] = (1 + 0.1*float64(k%2)) / (50 * 1.05)
	}
	counts := map[uint64]int{}
	for range chiDraws {
		counts[mustSample(t, s).Key]++
	}
	stat, df, err := chiSquare(counts, probs, chiDraws)
	if err != nil {
		t.Fatal(err)
	}
	if crit := chiSquareCritical(df, chiAlpha); stat <= crit {
		t.Fatalf("a 10%% bias went undetected: chi-square %.2f <= critical %.2f", stat, crit)
	}
}

func TestUniformDistribution(t *testing.T) {
	for _, n := range []int{1, 2, 37, 100} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			s := NewUniform(uint64(n))
			probs := map[uint64]float64{}
			for i := range n {
				key := uint64(i) * 0x9e3779b97f4a7c15
				mustInsert(t, s, key, float64(i%3)) // priorities are ignored
				probs[key] = 1 / float64(n)
			}
			if n == 1 {
				got := mustSample(t, s)
				if got.Probability != 1 {
					t.Fatalf("probability %v with one key", got.Probability)
				}
				return
			}
			drawAndTest(t, s, probs)
		})
	}
}

// expectedProbs computes p^a/sum(p^a) per key (0^a = 0), or 1/N if the sum
// is zero, the way a reader of the documentation would.
func expectedProbs(prios map[uint64]float64, a float64) map[uint64]float64 {
	w := map[uint64]float64{}
	var sum float64
	for k, p := range prios {
		if p > 0 {
			w[k] = math.Pow(p, a)
		}
		sum += w[k]
	}
	probs := map[uint64]float64{}
	for k := range prios {
		if sum == 0 {
			probs[k] = 1 / float64(len(prios))
		} else {
			probs[k] = w[k] / sum
		}
	}
	return probs
}

func TestPrioritizedDistribution(t *testing.T) {
	for _, a := range []float64{0, 0.6, 1} {
		t.Run(fmt.Sprintf("exponent=%v", a), func(t *testing.T) {
			s, err := NewPrioritized(a, 42)
			if err != nil {
				t.Fatal(err)
			}
			prios := map[uint64]float64{}
			for i := range 60 {
				key := uint64(1000 + i)
				p := 1 + float64(i%12)*0.75 // 1 .. 9.25
				if i%10 == 3 {
					p = 0 // never sampled, even with exponent 0
				}
				mustInsert(t, s, key, p)
				prios[key] = p
			}
			drawAndTest(t, s, expectedProbs(prios, a))
		})
	}
}

func TestPrioritizedAllZero(t *testing.T) {
	for _, a := range []float64{0, 0.6, 1} {
		t.Run(fmt.Sprintf("exponent=%v", a), func(t *testing.T) {
			s, err := NewPrioritized(a, 7)
			if err != nil {
				t.Fatal(err)
			}
			prios := map[uint64]float64{}
			for i := range 40 {
				key := uint64(i) << 40
				mustInsert(t, s, key, 0)
				prios[key] = 0
			}
			drawAndTest(t, s, expectedProbs(prios, a))

			// One positive priority takes every draw.
			if err := s.Update(5<<40, 0.001); err != nil {
				t.Fatal(err)
			}
			for range 1000 {
				if got := mustSample(t, s); got != (Sample{Key: 5 << 40, Probability: 1}) {
					t.Fatalf("Sample = %+v, want the only positive key with probability 1", got)
				}
			}
		})
	}
}

// TestPrioritizedAfterChurn applies a long random sequence of inserts,
// updates and deletes with priorities spanning many orders of magnitude
// (the pattern that makes delta-updated sum trees drift), then checks the
// reported probabilities against sums recomputed from scratch and the
// distribution against them.
func TestPrioritizedAfterChurn(t *testing.T) {
	for _, a := range []float64{0.6, 1} {
		t.Run(fmt.Sprintf("exponent=%v", a), func(t *testing.T) {
			s, err := NewPrioritized(a, 11)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 4))
			prios := map[uint64]float64{}
			var keys []uint64
			next := uint64(0)
			randPrio := func() float64 {
				if r.IntN(20) == 0 {
					return 0
				}
				return math.Pow(10, r.Float64()*16-8) // 1e-8 .. 1e8
			}
			for range 300_000 {
				switch op := r.IntN(10); {
				case op < 3 || len(keys) < 100:
					p := randPrio()
					mustInsert(t, s, next, p)
					prios[next] = p
					keys = append(keys, next)
					next++
				case op < 5 && len(keys) > 2000:
					i := r.IntN(len(keys))
					if err := s.Delete(keys[i]); err != nil {
						t.Fatal(err)
					}
					delete(prios, keys[i])
					keys[i] = keys[len(keys)-1]
					keys = keys[:len(keys)-1]
				default:
					k := keys[r.IntN(len(keys))]
					p := randPrio()
					if err := s.Update(k, p); err != nil {
						t.Fatal(err)
					}
					prios[k] = p
				}
			}
			// Probabilities at full size against sums recomputed from scratch.
			probs := expectedProbs(prios, a)
			for range 20_000 {
				got := mustSample(t, s)
				want := probs[got.Key]
				if want == 0 {
					t.Fatalf("sampled key %d with expected probability 0", got.Key)
				}
				if math.Abs(got.Probability-want) > 1e-9*want {
					t.Fatalf("key %d: probability %v, want %v", got.Key, got.Probability, want)
				}
			}
			// Shrink to a set small enough for a chi-square test, with
			// priorities in a moderate range so each expected count is >= 5.
			for len(keys) > 50 {
				if err := s.Delete(keys[len(keys)-1]); err != nil {
					t.Fatal(err)
				}
				delete(prios, keys[len(keys)-1])
				keys = keys[:len(keys)-1]
			}
			for i, k := range keys {
				p := 1 + float64(i%7)
				if i%9 == 0 {
					p = 0
				}
				if err := s.Update(k, p); err != nil {
					t.Fatal(err)
				}
				prios[k] = p
			}
			if s.Len() != len(keys) {
				t.Fatalf("Len = %d, want %d", s.Len(), len(keys))
			}
			drawAndTest(t, s, expectedProbs(prios, a))
		})
	}
}

// TestPrioritizedWeightMatchesPow checks that the weight p^a, computed as
// exp(a·log p), stays within a few parts in 1e13 of math.Pow.
func TestPrioritizedWeightMatchesPow(t *testing.T) {
	for _, a := range []float64{0.1, 0.5, 0.6, 0.9, 1.5, 2, 7, 100} {
		s, err := NewPrioritized(a, 1)
		if err != nil {
			t.Fatal(err)
		}
		for e := -300.0; e <= 300; e += 0.37 {
			p := math.Pow(10, e)
			want := math.Pow(p, a)
			got, err := s.weight(1, p)
			if math.IsInf(want, 1) {
				if err == nil {
					t.Fatalf("a=%v p=%v: weight %v, want overflow error", a, p, got)
				}
				continue
			}
			if err != nil {
				t.Fatalf("a=%v p=%v: %v", a, p, err)
			}
			if want < 0x1p-1022 { // subnormal or zero: only absolute accuracy
				if math.Abs(got-want) > 0x1p-1022 {
					t.Fatalf("a=%v p=%v: weight %v, want %v", a, p, got, want)
				}
				continue
			}
			if rel := math.Abs(got-want) / want; rel > 2e-13 {
				t.Fatalf("a=%v p=%v: weight %v, Pow %v, relative difference %g", a, p, got, want, rel)
			}
		}
	}
}
