package sampler

import (
	"math/rand/v2"
	"testing"
)

func checkIndex(t *testing.T, x *keyIndex, ref map[uint64]int32) {
	t.Helper()
	if x.len() != len(ref) {
		t.Fatalf("len = %d, want %d", x.len(), len(ref))
	}
	for k, v := range ref {
		if got, ok := x.get(k); !ok || got != v {
			t.Fatalf("get(%d) = %d, %v; want %d", k, got, ok, v)
		}
	}
	n := 0
	for _, s := range x.slots {
		if s.val != 0 {
			n++
		}
	}
	if n != len(ref) {
		t.Fatalf("%d occupied slots for %d keys", n, len(ref))
	}
}

func TestKeyIndexAgainstMap(t *testing.T) {
	for _, space := range []uint64{4, 50, 3000} {
		x := newKeyIndex()
		ref := map[uint64]int32{}
		r := rand.New(rand.NewPCG(space, 5))
		for step := range 100_000 {
			k := r.Uint64N(space) * 0x100000001 // keys sharing low bits
			switch r.IntN(4) {
			case 0, 1:
				v := int32(r.IntN(1 << 20))
				got, ok := x.insert(k, v)
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
				got, ok := x.remove(k)
				if old, present := ref[k]; ok != present || (ok && got != old) {
					t.Fatalf("remove(%d) = %d, %v; want %d, %v", k, got, ok, old, present)
				}
				delete(ref, k)
			default:
				if _, present := ref[k]; present {
					v := int32(r.IntN(1 << 20))
					x.set(k, v)
					ref[k] = v
				} else if _, ok := x.get(k); ok {
					t.Fatalf("get(%d) found an absent key", k)
				}
			}
			if step%4999 == 0 {
				checkIndex(t, &x, ref)
			}
		}
		checkIndex(t, &x, ref)
		x.clear()
		checkIndex(t, &x, map[uint64]int32{})
	}
}

// TestKeyIndexCollisions fills one probe run with keys that share a home
// slot (wrapping around the end of the table) and removes them in every
// position, which exercises backward-shift deletion.
func TestKeyIndexCollisions(t *testing.T) {
	x := newKeyIndex()
	x.grow() // 16 slots
	home := x.mask
	var same []uint64
	for k := uint64(0); len(same) < 5; k++ {
		if x.hash(k)&x.mask == home {
			same = append(same, k)
		}
	}
	for del := range same {
		y := keyIndex{seed: x.seed}
		y.grow()
		ref := map[uint64]int32{}
		for i, k := range same {
			y.insert(k, int32(i))
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
		y.insert(other, 99)
		ref[other] = 99
		if _, ok := y.remove(same[del]); !ok {
			t.Fatalf("remove(%d) failed", same[del])
		}
		delete(ref, same[del])
		checkIndex(t, &y, ref)
	}
}

func TestKeyIndexEmpty(t *testing.T) {
	var x keyIndex
	if _, ok := x.get(1); ok {
		t.Fatal("get on zero index found a key")
	}
	if _, ok := x.remove(1); ok {
		t.Fatal("remove on zero index found a key")
	}
	if _, ok := x.insert(0, 7); !ok {
		t.Fatal("insert on zero index failed")
	}
	if v, ok := x.get(0); !ok || v != 7 {
		t.Fatalf("get(0) = %d, %v", v, ok)
	}
}
