package chunkcodec

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/recall-rl/recall/internal/tensor"
)

// benchSteps is the chunk length used by the benchmarks (Reverb's default
// chunk length is 10 at most).
const benchSteps = 10

// benchColumn returns benchSteps steps of random float32 values in [0, 1),
// stepBytes bytes each.
func benchColumn(stepBytes int) []Column {
	r := rand.New(rand.NewPCG(1, 1))
	steps := make([]tensor.Tensor, benchSteps)
	for i := range steps {
		v := make([]float32, stepBytes/4)
		for j := range v {
			v[j] = r.Float32()
		}
		steps[i] = tensor.MustFromSlice(v)
	}
	return []Column{{Name: "observation", Steps: steps}}
}

var benchSizes = []struct {
	name  string
	bytes int
}{{"1KiB", 1 << 10}, {"256KiB", 256 << 10}}

func BenchmarkEncode(b *testing.B) {
	for _, size := range benchSizes {
		cols := benchColumn(size.bytes)
		for _, level := range allLevels {
			b.Run(fmt.Sprintf("step:%s;steps:%d;level:%s", size.name, benchSteps, level), func(b *testing.B) {
				b.SetBytes(int64(size.bytes * benchSteps))
				b.ReportAllocs()
				var out []byte
				for b.Loop() {
					var err error
					out, err = Encode(cols, Options{Level: level})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(out))/float64(size.bytes*benchSteps), "ratio")
			})
		}
	}
}

// BenchmarkAppendEncode reuses the output buffer, as a writer would.
func BenchmarkAppendEncode(b *testing.B) {
	for _, size := range benchSizes {
		cols := benchColumn(size.bytes)
		for _, level := range []Level{LevelNone, LevelFastest, LevelDefault} {
			b.Run(fmt.Sprintf("step:%s;steps:%d;level:%s", size.name, benchSteps, level), func(b *testing.B) {
				b.SetBytes(int64(size.bytes * benchSteps))
				b.ReportAllocs()
				var out []byte
				for b.Loop() {
					var err error
					out, err = AppendEncode(out[:0], cols, Options{Level: level})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		cols := benchColumn(size.bytes)
		for _, level := range allLevels {
			enc, err := Encode(cols, Options{Level: level})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("step:%s;steps:%d;level:%s", size.name, benchSteps, level), func(b *testing.B) {
				b.SetBytes(int64(size.bytes * benchSteps))
				b.ReportAllocs()
				for b.Loop() {
					c, err := Decode(enc)
					if err != nil {
						b.Fatal(err)
					}
					_ = c.Step(0, benchSteps-1)
				}
			})
		}
	}
}
