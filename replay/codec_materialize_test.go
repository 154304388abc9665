package replay

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/grpc/mem"
)

func TestMaterialize(t *testing.T) {
	if got := materialize(nil); got != nil {
		t.Fatalf("empty: %v", got)
	}
	if got := materialize(mem.BufferSlice{mem.SliceBuffer(nil)}); got != nil {
		t.Fatalf("empty buffer: %v", got)
	}
	for _, n := range []int{1, 3, 64, 65, 200} {
		var data mem.BufferSlice
		var want []byte
		for i := range n {
			b := bytes.Repeat([]byte{byte(i)}, i%7+1)
			want = append(want, b...)
			data = append(data, mem.SliceBuffer(b))
		}
		got := materialize(data)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d parts: got %v, want %v", n, got, want)
		}
		if &got[0] == &data[0].ReadOnlyData()[0] {
			t.Fatal("materialize shares the first buffer")
		}
	}
}

func BenchmarkMaterialize(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		var data mem.BufferSlice
		for range size / (16 << 10) {
			data = append(data, mem.SliceBuffer(make([]byte, 16<<10)))
		}
		b.Run(fmt.Sprintf("size=%dKiB/grpc", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				_ = data.Materialize()
			}
		})
		b.Run(fmt.Sprintf("size=%dKiB/nozero", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				_ = materialize(data)
			}
		})
	}
}
