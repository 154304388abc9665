// Package keyindex is an open-addressing hash index from uint64 keys to
// int32 positions, for the selectors and tables whose hot paths would
// otherwise pay two cache misses per built-in map access.
//
// An Index is not safe for concurrent use.
package keyindex

import "hash/maphash"

// Index maps keys to int32 positions. It is an open-addressing hash table
// with linear probing and backward-shift deletion (no tombstones), whose
// 16-byte slots hold the key and the position side by side: a lookup usually
// reads a single cache line, where a built-in map reads its control word and
// its slot separately. For selectors with a million keys that halves the
// cache misses of Insert, Update and Delete.
//
// The hash is seeded per index from hash/maphash, so clients choosing keys
// cannot aim for collisions. The seed affects only where keys sit in the
// table, never which key a selector samples.
type Index struct {
	slots []indexSlot // len is 0 or a power of two
	mask  uint64      // len(slots)-1
	count int
	seed  uint64

	// dense, in an index made by NewDense, holds the position plus one of
	// key k at dense[k]; the hash table is unused.
	dense   []uint32
	isDense bool

	sink uint64 // Touch's loads end here, so they are not optimised away
}

// indexSlot is one table slot; val is the position plus one, 0 when empty,
// so a zeroed table is empty.
type indexSlot struct {
	key uint64
	val uint32
}

const minIndexSlots = 16

// New returns an empty index with a random hash seed.
func New() Index {
	return Index{seed: maphash.Comparable(maphash.MakeSeed(), uint64(0))}
}

// MaxDenseKey bounds the keys of a dense index.
const MaxDenseKey = 1<<31 - 1

// NewDense returns an empty index for small keys that are reused after
// removal, such as slot numbers: key k lives at entry k of an array, with no
// hashing. Keys must not exceed MaxDenseKey; memory grows with the largest
// key inserted.
func NewDense() Index { return Index{isDense: true} }

// hash mixes key with the seed (the splitmix64 finaliser).
func (x *Index) hash(key uint64) uint64 {
	z := key ^ x.seed
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Len returns the number of keys.
func (x *Index) Len() int { return x.count }

// Touch reads the slot key hashes to, without using what it finds. Called
// for each key of a run of operations before performing them, it lets the
// processor fetch the slots that are not cached all at once (the loads are
// independent) instead of one miss at a time.
func (x *Index) Touch(key uint64) {
	if x.isDense || x.count == 0 {
		return
	}
	x.sink += x.slots[x.hash(key)&x.mask].key
}

// Get returns the position of key.
func (x *Index) Get(key uint64) (int32, bool) {
	if x.isDense {
		if key >= uint64(len(x.dense)) || x.dense[key] == 0 {
			return 0, false
		}
		return int32(x.dense[key] - 1), true
	}
	if x.count == 0 {
		return 0, false
	}
	for i := x.hash(key) & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if s.val == 0 {
			return 0, false
		}
		if s.key == key {
			return int32(s.val - 1), true
		}
	}
}

// Insert maps a key that is not present to pos. If the key is present it
// returns its position and false, changing nothing.
func (x *Index) Insert(key uint64, pos int32) (int32, bool) {
	if x.isDense {
		return x.denseInsert(key, pos)
	}
	if 4*(x.count+1) > 3*len(x.slots) {
		if old, ok := x.Get(key); ok {
			return old, false
		}
		x.grow()
	}
	for i := x.hash(key) & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if s.val == 0 {
			*s = indexSlot{key: key, val: uint32(pos) + 1}
			x.count++
			return pos, true
		}
		if s.key == key {
			return int32(s.val - 1), false
		}
	}
}

// Set changes the position of a present key. It panics if the key is
// absent.
func (x *Index) Set(key uint64, pos int32) {
	if x.isDense {
		if key >= uint64(len(x.dense)) || x.dense[key] == 0 {
			panic("keyindex: Set of an absent key")
		}
		x.dense[key] = uint32(pos) + 1
		return
	}
	for i := x.hash(key) & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if s.val == 0 {
			panic("keyindex: Set of an absent key")
		}
		if s.key == key {
			s.val = uint32(pos) + 1
			return
		}
	}
}

// Remove deletes key and returns its position.
func (x *Index) Remove(key uint64) (int32, bool) {
	if x.isDense {
		pos, ok := x.Get(key)
		if ok {
			x.dense[key] = 0
			x.count--
		}
		return pos, ok
	}
	if x.count == 0 {
		return 0, false
	}
	i := x.hash(key) & x.mask
	for {
		s := &x.slots[i]
		if s.val == 0 {
			return 0, false
		}
		if s.key == key {
			break
		}
		i = (i + 1) & x.mask
	}
	pos := int32(x.slots[i].val - 1)
	// Backward shift: pull later members of the probe run into the hole
	// when the hole lies between their home slot and where they are.
	for j := (i + 1) & x.mask; ; j = (j + 1) & x.mask {
		s := &x.slots[j]
		if s.val == 0 {
			break
		}
		home := x.hash(s.key) & x.mask
		if (j-home)&x.mask >= (j-i)&x.mask {
			x.slots[i] = *s
			i = j
		}
	}
	x.slots[i] = indexSlot{}
	x.count--
	return pos, true
}

// grow doubles the table (or allocates the first one) and reinserts.
func (x *Index) grow() {
	old := x.slots
	n := max(minIndexSlots, 2*len(old))
	x.slots = make([]indexSlot, n)
	x.mask = uint64(n - 1)
	for _, s := range old {
		if s.val == 0 {
			continue
		}
		i := x.hash(s.key) & x.mask
		for x.slots[i].val != 0 {
			i = (i + 1) & x.mask
		}
		x.slots[i] = s
	}
}

// Clear removes every key, keeping the table.
func (x *Index) Clear() {
	if x.isDense {
		clear(x.dense)
		x.count = 0
		return
	}
	clear(x.slots)
	x.count = 0
}

// denseInsert is Insert for a dense index.
func (x *Index) denseInsert(key uint64, pos int32) (int32, bool) {
	if key > MaxDenseKey {
		panic("keyindex: dense key out of range")
	}
	if key >= uint64(len(x.dense)) {
		n := max(minIndexSlots, 2*len(x.dense))
		for uint64(n) <= key {
			n *= 2
		}
		grown := make([]uint32, n)
		copy(grown, x.dense)
		x.dense = grown
	}
	if v := x.dense[key]; v != 0 {
		return int32(v - 1), false
	}
	x.dense[key] = uint32(pos) + 1
	x.count++
	return pos, true
}
