package table

// slabPageBits sets the slab page size: 1024 items of ~100 bytes, so a page
// is a small allocation and growing the slab never copies items.
const (
	slabPageBits = 10
	slabPageSize = 1 << slabPageBits
)

// slab holds item records in fixed pages indexed by a dense int32 slot.
// Freed slots are zeroed (dropping their pointers) and reused. A slot is
// live while its record has chunks: every inserted item has at least one.
type slab struct {
	pages [][]item
	n     int32   // slots handed out so far
	free  []int32 // freed slots
}

// alloc returns a free slot.
func (s *slab) alloc() int32 {
	if n := len(s.free); n > 0 {
		slot := s.free[n-1]
		s.free = s.free[:n-1]
		return slot
	}
	if int(s.n)>>slabPageBits == len(s.pages) {
		s.pages = append(s.pages, make([]item, slabPageSize))
	}
	s.n++
	return s.n - 1
}

// at returns the record in slot.
func (s *slab) at(slot int32) *item {
	return &s.pages[slot>>slabPageBits][slot&(slabPageSize-1)]
}

// release zeroes slot and makes it free.
func (s *slab) release(slot int32) {
	*s.at(slot) = item{}
	s.free = append(s.free, slot)
}

// each calls fn for every live record.
func (s *slab) each(fn func(*item)) {
	for slot := int32(0); slot < s.n; slot++ {
		if rec := s.at(slot); len(rec.chunks) > 0 {
			fn(rec)
		}
	}
}

// reset drops every record.
func (s *slab) reset() { *s = slab{} }
