package keyindex_test

import (
	"fmt"

	"github.com/recall-rl/recall/internal/keyindex"
)

func Example() {
	x := keyindex.New()
	x.Insert(42, 0)
	x.Insert(7, 1)
	if pos, ok := x.Get(42); ok {
		fmt.Println("42 at", pos)
	}
	x.Set(7, 5)
	pos, _ := x.Remove(7)
	_, found := x.Get(7)
	fmt.Println("removed 7 from", pos, "still there:", found, "len:", x.Len())
	// Output:
	// 42 at 0
	// removed 7 from 5 still there: false len: 1
}
