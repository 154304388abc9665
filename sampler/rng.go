package sampler

import (
	"math/bits"
	"math/rand/v2"
)

// seedStream is the second PCG seed word; the first is the caller's seed.
const seedStream = 0x9e3779b97f4a7c15

// rng is a deterministic random source owned by one selector. It embeds the
// PCG state by value and draws from it directly, so drawing costs no
// interface call and no allocation.
type rng struct {
	pcg rand.PCG
}

func newRNG(seed uint64) rng {
	var r rng
	r.pcg.Seed(seed, seedStream)
	return r
}

// intN returns a uniform integer in [0, n) for n > 0, using Lemire's
// multiply-and-reject method (unbiased).
func (r *rng) intN(n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(r.pcg.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.pcg.Uint64(), un)
		}
	}
	return int(hi)
}

// float64 returns a uniform float64 in [0, 1) with 53 random bits.
func (r *rng) float64() float64 {
	return float64(r.pcg.Uint64()>>11) * 0x1p-53
}
