package chunkcodec_test

import (
	"fmt"

	"github.com/recall-rl/recall/internal/chunkcodec"
	"github.com/recall-rl/recall/internal/tensor"
)

func Example() {
	// An actor collects three steps of two columns.
	obs := chunkcodec.Column{Name: "observation"}
	act := chunkcodec.Column{Name: "action"}
	for t := range 3 {
		x := float32(t)
		obs.Steps = append(obs.Steps, tensor.MustFromSlice([]float32{x, x + 0.5}))
		act.Steps = append(act.Steps, tensor.MustFromSlice([]int32{int32(10 * t), int32(10*t + 1)}))
	}

	// ... encodes them as one chunk ...
	b, err := chunkcodec.Encode([]chunkcodec.Column{obs, act}, chunkcodec.Options{
		Level:       chunkcodec.LevelFastest,
		DeltaEncode: true, // applies to the int32 column only
	})
	if err != nil {
		panic(err)
	}

	// ... and a learner decodes it.
	c, err := chunkcodec.Decode(b)
	if err != nil {
		panic(err)
	}
	for i := range c.NumColumns() {
		info := c.Info(i)
		fmt.Printf("%s: %s batched %v, delta %v\n", info.Name, info.DType, c.Batched(i).Shape, info.Delta)
	}
	a := c.Index("action")
	step2, _ := tensor.ToSlice[int32](c.Step(a, 2))
	fmt.Println("action at step 2:", step2)

	// Damage is detected.
	b[len(b)/2] ^= 1
	_, err = chunkcodec.Decode(b)
	fmt.Println(err != nil)

	// Output:
	// observation: float32 batched [3 2], delta false
	// action: int32 batched [3 2], delta true
	// action at step 2: [20 21]
	// true
}

func ExampleParseHeader() {
	b, err := chunkcodec.Encode([]chunkcodec.Column{
		{Name: "reward", Steps: []tensor.Tensor{tensor.Scalar(float32(1)), tensor.Scalar(float32(0))}},
	}, chunkcodec.Options{})
	if err != nil {
		panic(err)
	}
	// A server can check a chunk against a table signature without
	// decompressing it.
	h, err := chunkcodec.ParseHeader(b)
	fmt.Println(h.NumSteps, h.Columns[0].Name, h.Columns[0].DType, h.Columns[0].Shape, err)
	// Output:
	// 2 reward float32 [] <nil>
}
