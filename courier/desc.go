package courier

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/recall-rl/recall/internal/tensor"
)

// Limits on descriptors received from a peer. Descriptors of real Go types
// are far below them.
const (
	maxDescLen   = 64 << 10
	maxDescDepth = 64
	// maxStaticSize bounds the in-memory size of a Go type built from a
	// received descriptor (arrays are allocated before their bytes are read).
	maxStaticSize = 64 << 20
	// maxCacheEntries and maxCachedKeyLen bound the caches keyed by
	// received descriptors, so that peers cannot grow them without bound;
	// descriptors beyond them are simply parsed again when they recur.
	maxCacheEntries = 4096
	maxCachedKeyLen = 4096
)

// nilDesc is the descriptor of an untyped nil argument. It matches any
// pointer, slice or map parameter, which receives its nil value.
const nilDesc = "nil"

// basicTypes maps the descriptor of each non-composite wire type to the Go
// type an untyped decode produces for it.
var basicTypes = map[string]reflect.Type{
	"bool":       reflect.TypeFor[bool](),
	"int8":       reflect.TypeFor[int8](),
	"int16":      reflect.TypeFor[int16](),
	"int32":      reflect.TypeFor[int32](),
	"int64":      reflect.TypeFor[int64](),
	"uint8":      reflect.TypeFor[uint8](),
	"uint16":     reflect.TypeFor[uint16](),
	"uint32":     reflect.TypeFor[uint32](),
	"uint64":     reflect.TypeFor[uint64](),
	"float32":    reflect.TypeFor[float32](),
	"float64":    reflect.TypeFor[float64](),
	"complex64":  reflect.TypeFor[complex64](),
	"complex128": reflect.TypeFor[complex128](),
	"string":     reflect.TypeFor[string](),
	"duration":   reflect.TypeFor[time.Duration](),
	"tensor":     reflect.TypeFor[tensor.Tensor](),
}

type wireKind uint8

const (
	kindBasic wireKind = iota
	kindSlice
	kindArray
	kindMap
	kindPointer
	kindStruct
)

// wireType is a parsed type descriptor.
type wireType struct {
	kind   wireKind
	basic  string    // kindBasic: the descriptor word
	elem   *wireType // slice, array and pointer elements; map values
	key    *wireType // map keys
	n      int       // array length
	fields []wireField
}

type wireField struct {
	name string
	typ  *wireType
}

var errBadDesc = errors.New("courier: malformed type descriptor")

// parseDesc parses one type descriptor, strictly in the canonical form that
// typeCodec.desc produces.
func parseDesc(s string) (*wireType, error) {
	if len(s) > maxDescLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", errBadDesc, maxDescLen)
	}
	p := descParser{s: s}
	w, err := p.typ()
	if err != nil {
		return nil, err
	}
	if p.i != len(s) {
		return nil, p.errorf("unexpected %q", s[p.i:])
	}
	return w, nil
}

type descParser struct {
	s     string
	i     int
	depth int
}

func (p *descParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w %q at byte %d: %s", errBadDesc, p.s, p.i, fmt.Sprintf(format, args...))
}

func (p *descParser) eat(tok string) bool {
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

func (p *descParser) expect(tok string) error {
	if !p.eat(tok) {
		return p.errorf("want %q", tok)
	}
	return nil
}

func (p *descParser) typ() (*wireType, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDescDepth {
		return nil, p.errorf("nested deeper than %d", maxDescDepth)
	}
	switch {
	case p.eat("[]"):
		elem, err := p.typ()
		if err != nil {
			return nil, err
		}
		return &wireType{kind: kindSlice, elem: elem}, nil
	case p.eat("["):
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		digits := p.s[start:p.i]
		n, err := strconv.Atoi(digits)
		if err != nil || n > maxArrayLen || (len(digits) > 1 && digits[0] == '0') {
			return nil, p.errorf("bad array length %q", digits)
		}
		if err := p.expect("]"); err != nil {
			return nil, err
		}
		elem, err := p.typ()
		if err != nil {
			return nil, err
		}
		return &wireType{kind: kindArray, elem: elem, n: n}, nil
	case p.eat("map["):
		key, err := p.typ()
		if err != nil {
			return nil, err
		}
		if err := p.expect("]"); err != nil {
			return nil, err
		}
		elem, err := p.typ()
		if err != nil {
			return nil, err
		}
		return &wireType{kind: kindMap, key: key, elem: elem}, nil
	case p.eat("*"):
		elem, err := p.typ()
		if err != nil {
			return nil, err
		}
		return &wireType{kind: kindPointer, elem: elem}, nil
	case p.eat("struct{"):
		w := &wireType{kind: kindStruct}
		if p.eat("}") {
			return w, nil
		}
		for {
			name, err := p.fieldName()
			if err != nil {
				return nil, err
			}
			if err := p.expect(" "); err != nil {
				return nil, err
			}
			ft, err := p.typ()
			if err != nil {
				return nil, err
			}
			w.fields = append(w.fields, wireField{name: name, typ: ft})
			if p.eat("}") {
				return w, nil
			}
			if err := p.expect("; "); err != nil {
				return nil, err
			}
		}
	}
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= '0' && p.s[p.i] <= '9') {
		p.i++
	}
	word := p.s[start:p.i]
	if _, ok := basicTypes[word]; !ok {
		p.i = start
		return nil, p.errorf("unknown type %q", word)
	}
	return &wireType{kind: kindBasic, basic: word}, nil
}

// fieldName reads an exported Go identifier.
func (p *descParser) fieldName() (string, error) {
	start := p.i
	for p.i < len(p.s) {
		r, size := utf8.DecodeRuneInString(p.s[p.i:])
		first := p.i == start
		ok := r != utf8.RuneError && (unicode.IsLetter(r) || r == '_' || !first && unicode.IsDigit(r))
		if first && !unicode.IsUpper(r) {
			ok = false
		}
		if !ok {
			break
		}
		p.i += size
	}
	if p.i == start {
		return "", p.errorf("want an exported field name")
	}
	return p.s[start:p.i], nil
}

// writeShape writes w's descriptor without struct field names.
func (w *wireType) writeShape(b *strings.Builder) {
	switch w.kind {
	case kindBasic:
		b.WriteString(w.basic)
	case kindSlice:
		b.WriteString("[]")
		w.elem.writeShape(b)
	case kindArray:
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(w.n))
		b.WriteByte(']')
		w.elem.writeShape(b)
	case kindMap:
		b.WriteString("map[")
		w.key.writeShape(b)
		b.WriteByte(']')
		w.elem.writeShape(b)
	case kindPointer:
		b.WriteByte('*')
		w.elem.writeShape(b)
	case kindStruct:
		b.WriteString("struct{")
		for i, f := range w.fields {
			if i > 0 {
				b.WriteString("; ")
			}
			f.typ.writeShape(b)
		}
		b.WriteByte('}')
	}
}

func (w *wireType) shape() string {
	var b strings.Builder
	w.writeShape(&b)
	return b.String()
}

// goType builds the Go type an untyped decode of w produces: basic types as
// listed in basicTypes, composites from their parts, structs with
// reflect.StructOf and the descriptor's field names.
func (w *wireType) goType() (reflect.Type, error) {
	var t reflect.Type
	switch w.kind {
	case kindBasic:
		t = basicTypes[w.basic]
	case kindSlice, kindPointer, kindArray:
		et, err := w.elem.goType()
		if err != nil {
			return nil, err
		}
		switch w.kind {
		case kindSlice:
			t = reflect.SliceOf(et)
		case kindPointer:
			t = reflect.PointerTo(et)
		default:
			if et.Size() != 0 && uintptr(w.n) > maxStaticSize/et.Size() {
				return nil, fmt.Errorf("%w: [%d]%s is larger than %d bytes", errBadDesc, w.n, et, maxStaticSize)
			}
			t = reflect.ArrayOf(w.n, et)
		}
	case kindMap:
		kt, err := w.key.goType()
		if err != nil {
			return nil, err
		}
		if !kt.Comparable() {
			return nil, fmt.Errorf("%w: map key %s is not comparable", errBadDesc, kt)
		}
		et, err := w.elem.goType()
		if err != nil {
			return nil, err
		}
		t = reflect.MapOf(kt, et)
	case kindStruct:
		fields := make([]reflect.StructField, len(w.fields))
		seen := make(map[string]bool, len(w.fields))
		var size uintptr
		for i, f := range w.fields {
			if seen[f.name] {
				return nil, fmt.Errorf("%w: duplicate field %s", errBadDesc, f.name)
			}
			seen[f.name] = true
			ft, err := f.typ.goType()
			if err != nil {
				return nil, err
			}
			if size += ft.Size(); size > maxStaticSize {
				return nil, fmt.Errorf("%w: struct is larger than %d bytes", errBadDesc, maxStaticSize)
			}
			fields[i] = reflect.StructField{Name: f.name, Type: ft}
		}
		t = reflect.StructOf(fields)
	}
	if t.Size() > maxStaticSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", errBadDesc, t, maxStaticSize)
	}
	return t, nil
}

// boundedCache is a concurrency-safe map from received descriptors that
// stops growing at limit entries (maxCacheEntries if 0) and ignores keys
// longer than maxCachedKeyLen.
type boundedCache[V any] struct {
	limit int
	mu    sync.RWMutex
	m     map[string]V
}

func (c *boundedCache[V]) get(k string) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *boundedCache[V]) put(k string, v V) {
	if len(k) > maxCachedKeyLen {
		return
	}
	limit := c.limit
	if limit == 0 {
		limit = maxCacheEntries
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]V)
	}
	if len(c.m) < limit {
		c.m[k] = v
	}
	c.mu.Unlock()
}

// descCodecs caches the codecs of types built from received descriptors.
var descCodecs boundedCache[*typeCodec]

// codecForDesc returns a codec able to decode values described by desc into
// the Go types goType picks.
func codecForDesc(desc string) (*typeCodec, error) {
	if c, ok := descCodecs.get(desc); ok {
		return c, nil
	}
	w, err := parseDesc(desc)
	if err != nil {
		return nil, err
	}
	t, err := w.goType()
	if err != nil {
		return nil, err
	}
	c, err := codecFor(t)
	if err != nil {
		return nil, err
	}
	descCodecs.put(desc, c)
	return c, nil
}

type compatKey struct {
	t    reflect.Type
	desc string
}

// compatCache remembers which received descriptors a Go type accepts.
var (
	compatCache   sync.Map // compatKey → error (nil for compatible)
	compatEntries atomic.Int32
)

type compatResult struct{ err error }

// compatible reports whether values described by desc can be decoded into
// c's type: the shapes must be equal; field names may differ.
func compatible(c *typeCodec, desc string) error {
	if desc == c.desc {
		return nil
	}
	key := compatKey{c.typ, desc}
	if r, ok := compatCache.Load(key); ok {
		return r.(compatResult).err
	}
	var err error
	w, perr := parseDesc(desc)
	switch {
	case perr != nil:
		err = perr
	case w.shape() != c.shape:
		err = fmt.Errorf("courier: %s does not match %s", desc, c.desc)
	}
	if len(desc) <= maxCachedKeyLen && compatEntries.Add(1) <= maxCacheEntries {
		compatCache.Store(key, compatResult{err})
	}
	return err
}
