package chunkcodec

import "encoding/binary"

// Delta coding works on the little-endian bytes of integer elements. Signed
// and unsigned types of one width share the same two's complement wrapping
// arithmetic, so only the element size matters.

// deltaEncode sets out = cur - prev element-wise, for elements of size bytes.
// All three slices have the same length, a multiple of size.
func deltaEncode(out, cur, prev []byte, size int) {
	cur = cur[:len(out)]
	prev = prev[:len(out)]
	le := binary.LittleEndian
	switch size {
	case 1:
		for i := range out {
			out[i] = cur[i] - prev[i]
		}
	case 2:
		for i := 0; i+2 <= len(out); i += 2 {
			le.PutUint16(out[i:], le.Uint16(cur[i:])-le.Uint16(prev[i:]))
		}
	case 4:
		for i := 0; i+4 <= len(out); i += 4 {
			le.PutUint32(out[i:], le.Uint32(cur[i:])-le.Uint32(prev[i:]))
		}
	case 8:
		for i := 0; i+8 <= len(out); i += 8 {
			le.PutUint64(out[i:], le.Uint64(cur[i:])-le.Uint64(prev[i:]))
		}
	default:
		panic("chunkcodec: bad element size")
	}
}

// deltaDecode undoes deltaEncode in place: cur += prev element-wise.
func deltaDecode(cur, prev []byte, size int) {
	prev = prev[:len(cur)]
	le := binary.LittleEndian
	switch size {
	case 1:
		for i := range cur {
			cur[i] += prev[i]
		}
	case 2:
		for i := 0; i+2 <= len(cur); i += 2 {
			le.PutUint16(cur[i:], le.Uint16(cur[i:])+le.Uint16(prev[i:]))
		}
	case 4:
		for i := 0; i+4 <= len(cur); i += 4 {
			le.PutUint32(cur[i:], le.Uint32(cur[i:])+le.Uint32(prev[i:]))
		}
	case 8:
		for i := 0; i+8 <= len(cur); i += 8 {
			le.PutUint64(cur[i:], le.Uint64(cur[i:])+le.Uint64(prev[i:]))
		}
	default:
		panic("chunkcodec: bad element size")
	}
}
