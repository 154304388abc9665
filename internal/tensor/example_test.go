package tensor_test

import (
	"fmt"

	"github.com/recall-rl/recall/internal/tensor"
)

func Example() {
	// Build a 2x3 float32 observation from a Go slice.
	obs, err := tensor.FromSlice([]float32{0, 0.5, 1, 1.5, 2, 2.5}, 2, 3)
	if err != nil {
		panic(err)
	}
	fmt.Println(obs.DType, obs.Shape, obs.NumElements(), len(obs.Data), "bytes")

	// Named types map to the dtype of their underlying type.
	type Reward float32
	r := tensor.Scalar(Reward(1.25))
	fmt.Println(r.DType, r.Shape)

	// Reading back checks the element type.
	values, err := tensor.ToSlice[float32](obs)
	fmt.Println(values, err)
	_, err = tensor.ToSlice[int32](obs)
	fmt.Println(err)

	// Output:
	// float32 [2 3] 6 24 bytes
	// float32 []
	// [0 0.5 1 1.5 2 2.5] <nil>
	// tensor: invalid tensor: tensor is float32, not int32
}

func ExampleParseDType() {
	d, err := tensor.ParseDType("int64")
	fmt.Println(d, d.Size(), d.IsInteger(), err)
	_, err = tensor.ParseDType("complex64")
	fmt.Println(err)
	// Output:
	// int64 8 true <nil>
	// tensor: unknown dtype "complex64"
}
