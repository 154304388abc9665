package sampler_test

import (
	"errors"
	"fmt"

	"github.com/recall-rl/recall/sampler"
)

// A table builds its sampler and remover from specs, keeps their keys in
// step with its items, and serialises calls under its own lock.
func Example() {
	spec, err := sampler.ParseKind("fifo")
	if err != nil {
		panic(err)
	}
	remover, err := sampler.New(sampler.Spec{Kind: spec}, 0)
	if err != nil {
		panic(err)
	}
	for key := uint64(1); key <= 3; key++ {
		if err := remover.Insert(key, 1); err != nil {
			panic(err)
		}
	}
	oldest, _ := remover.Sample()
	fmt.Println("evict", oldest.Key, "probability", oldest.Probability)

	err = remover.Insert(2, 1)
	fmt.Println(errors.Is(err, sampler.ErrKeyExists))
	// Output:
	// evict 1 probability 1
	// true
}

func ExampleNewPrioritized() {
	s, err := sampler.NewPrioritized(1, 42)
	if err != nil {
		panic(err)
	}
	_ = s.Insert(10, 0) // priority 0: never sampled while another key is positive
	_ = s.Insert(20, 3)
	_ = s.Insert(30, 1)
	_ = s.Delete(30)
	got, _ := s.Sample()
	fmt.Println(got.Key, got.Probability)

	_ = s.Update(20, 0) // every priority is 0: uniform
	got, _ = s.Sample()
	fmt.Println(got.Probability)
	// Output:
	// 20 1
	// 0.5
}

func ExampleNewMaxHeap() {
	s := sampler.NewMaxHeap()
	_ = s.Insert(1, 0.5)
	_ = s.Insert(2, 0.9)
	_ = s.Insert(3, 0.9) // ties go to the least recently inserted or updated key
	for s.Len() > 0 {
		top, _ := s.Sample()
		fmt.Print(top.Key, " ")
		_ = s.Delete(top.Key)
	}
	fmt.Println()
	// Output: 2 3 1
}
