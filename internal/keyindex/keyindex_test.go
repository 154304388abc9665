package keyindex

import (
	"math/rand/v2"
	"testing"
)

func checkIndex(t *testing.T, x *Index, ref map[uint64]int32) {
	t.Helper()
	if x.Len() != len(ref) {
		t.Fatalf("len = %d, want %d", x.Len(), len(ref))
	}
	for k, v := range ref {
		if got, ok := x.Get(k); !ok || got != v {
			t.Fatalf("get(%d) = %d, %v; want %d", k, got, ok, v)
		}
	}
	n := 0
	for _, s := range x.slots {
		if s.val != 0 {
			n++
		}
	}
	for _, v := range x.dense {
		if v != 0 {
			n++
		}
	}
	if n != len(ref) {
		t.Fatalf("%d occupied slots for %d keys", n, len(ref))
	}
}

func TestKeyIndexAgainstMap(t *testing.T) {
	for _, dense := range []bool{false, true} {
		for _, space := range []uint64{4, 50, 3000} {
			testAgainstMap(t, dense, space)
		}
	}
}

func testAgainstMap(t *testing.T, dense bool, space uint64) {
	{
		x := New()
		mult := uint64(0x100000001) // keys sharing low bits
		if dense {
			x, mult = NewDense(), 1
		}
		ref := map[uint64]int32{}
		r := rand.New(rand.NewPCG(space, 5))
		for step := range 100_000 {
			k := r.Uint64N(space) * mult
			switch r.IntN(4) {
			case 0, 1:
				v := int32(r.IntN(1 << 20))
				got, ok := x.Insert(k, v)
				if old, present := ref[k]; present {
					if ok || got != old {
						t.Fatalf("insert(%d) of present key = %d, %v; want %d, false", k, got, ok, old)
					}
				} else {
					if !ok || got != v {
						t.Fatalf("insert(%d) = %d, %v; want %d, true", k, got, ok, v)
					}
					ref[k] = v
				}
			case 2:
				got, ok := x.Remove(k)
				if old, present := ref[k]; ok != present || (ok && got != old) {
					t.Fatalf("remove(%d) = %d, %v; want %d, %v", k, got, ok, old, present)
				}
				delete(ref, k)
			default:
				if _, present := ref[k]; present {
					v := int32(r.IntN(1 << 20))
					x.Set(k, v)
					ref[k] = v
				} else if _, ok := x.Get(k); ok {
					t.Fatalf("get(%d) found an absent key", k)
				}
			}
			if step%4999 == 0 {
				checkIndex(t, &x, ref)
			}
		}
		checkIndex(t, &x, ref)
		x.Clear()
		checkIndex(t, &x, map[uint64]int32{})
	}
}

// TestKeyIndexCollisions fills one probe run with keys that share a home
// slot (wrapping around the end of the table) and removes them in every
// position, which exercises backward-shift deletion.
func TestKeyIndexCollisions(t *testing.T) {
	x := New()
	x.grow() // 16 slots
	home := x.mask
	var same []uint64
	for k := uint64(0); len(same) < 5; k++ {
		if x.hash(k)&x.mask == home {
			same = append(same, k)
		}
	}
	for del := range same {
		y := Index{seed: x.seed}
		y.grow()
		ref := map[uint64]int32{}
		for i, k := range same {
			y.Insert(k, int32(i))
			ref[k] = int32(i)
		}
		// A key homed at slot 0 sits after the wrapped run.
		var other uint64
		for k := uint64(1 << 32); ; k++ {
			if y.hash(k)&y.mask == 0 {
				other = k
				break
			}
		}
		y.Insert(other, 99)
		ref[other] = 99
		if _, ok := y.Remove(same[del]); !ok {
			t.Fatalf("remove(%d) failed", same[del])
		}
		delete(ref, same[del])
		checkIndex(t, &y, ref)
	}
}

func TestKeyIndexEmpty(t *testing.T) {
	var x Index
	if _, ok := x.Get(1); ok {
		t.Fatal("get on zero index found a key")
	}
	if _, ok := x.Remove(1); ok {
		t.Fatal("remove on zero index found a key")
	}
	if _, ok := x.Insert(0, 7); !ok {
		t.Fatal("insert on zero index failed")
	}
	if v, ok := x.Get(0); !ok || v != 7 {
		t.Fatalf("get(0) = %d, %v", v, ok)
	}
}

// TestTouchChangesNothing: Touch only reads, for any key, in any kind of
// index.
func TestTouchChangesNothing(t *testing.T) {
	for _, x := range []Index{New(), NewDense()} {
		x.Touch(3) // empty
		for k := range uint64(100) {
			x.Insert(k, int32(k))
		}
		for k := range uint64(300) {
			x.Touch(k)
		}
		if x.Len() != 100 {
			t.Fatalf("len %d after Touch, want 100", x.Len())
		}
		for k := range uint64(100) {
			if pos, ok := x.Get(k); !ok || pos != int32(k) {
				t.Fatalf("key %d: %d %v after Touch", k, pos, ok)
			}
		}
		if _, ok := x.Get(200); ok {
			t.Fatal("Touch added a key")
		}
	}
}
