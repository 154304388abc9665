package table

import (
	"fmt"
	"slices"
)

// Signature fixes the columns of a table's items. When a table has one,
// every inserted item must have exactly these columns, and the chunks it
// uses must describe their columns with a matching dtype and step shape.
type Signature struct {
	Columns []ColumnSpec `json:"columns"`
}

// Validate checks that the signature has columns, names are unique and
// non-empty, dtypes are known and dimensions are >= -1.
func (s *Signature) Validate() error {
	if len(s.Columns) == 0 {
		return fmt.Errorf("signature has no columns")
	}
	seen := make(map[string]bool, len(s.Columns))
	for i, c := range s.Columns {
		if c.Name == "" {
			return fmt.Errorf("signature column %d has no name", i)
		}
		if seen[c.Name] {
			return fmt.Errorf("signature column %q appears twice", c.Name)
		}
		seen[c.Name] = true
		if !c.DType.Valid() {
			return fmt.Errorf("signature column %q has unknown dtype %d", c.Name, uint8(c.DType))
		}
		for _, d := range c.Shape {
			if d < -1 {
				return fmt.Errorf("signature column %q has dimension %d (want >= -1)", c.Name, d)
			}
		}
	}
	return nil
}

// check reports whether slice s of chunk c can be column ci of an item.
func (s *Signature) check(ci int, c *Chunk, sl ChunkSlice) error {
	want := s.Columns[ci]
	if len(c.Columns) == 0 {
		return fmt.Errorf("column %q: chunk %d does not describe its columns, so it cannot be checked against the signature", want.Name, c.Key)
	}
	got := c.Columns[sl.Index]
	if got.DType != want.DType {
		return fmt.Errorf("column %q: dtype %s, signature wants %s", want.Name, got.DType, want.DType)
	}
	if len(got.Shape) != len(want.Shape) {
		return fmt.Errorf("column %q: step shape %v, signature wants %v", want.Name, got.Shape, want.Shape)
	}
	for i, d := range want.Shape {
		if d != -1 && got.Shape[i] != d {
			return fmt.Errorf("column %q: step shape %v, signature wants %v", want.Name, got.Shape, want.Shape)
		}
	}
	return nil
}

// clone returns a deep copy.
func (s *Signature) clone() *Signature {
	if s == nil {
		return nil
	}
	out := &Signature{Columns: make([]ColumnSpec, len(s.Columns))}
	for i, c := range s.Columns {
		c.Shape = slices.Clone(c.Shape)
		out.Columns[i] = c
	}
	return out
}
