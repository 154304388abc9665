package sumtree_test

import (
	"fmt"

	"github.com/recall-rl/recall/internal/sumtree"
)

// Leaves carry a weight and a value; Find maps a point of [0, Total) to the
// leaf whose cumulative interval contains it, so a uniform point picks a
// leaf with probability weight/Total.
func Example() {
	t := sumtree.New(4)
	t.Push(1, 100) // interval [0, 1)
	t.Push(3, 200) // interval [1, 4)
	t.Push(0, 300) // never picked
	t.Push(4, 400) // interval [4, 8)
	fmt.Println("total:", t.Total())
	for _, u := range []float64{0.5, 1, 3.9, 7.5} {
		fmt.Println(u, "->", t.Value(t.Find(u)))
	}
	t.Set(0, 0) // leaf 0 can no longer be picked
	fmt.Println(0.5, "->", t.Value(t.Find(0.5)))
	// Output:
	// total: 8
	// 0.5 -> 100
	// 1 -> 200
	// 3.9 -> 200
	// 7.5 -> 400
	// 0.5 -> 200
}
