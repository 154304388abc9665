// Package courier serves the exported methods of a Go value as RPCs over
// gRPC, and calls them synchronously or as futures. It is the transport
// between program nodes, after Launchpad's courier: one generic gRPC service
// instead of generated stubs, with a compact binary codec for Go values.
//
// # Serving
//
//	srv, err := courier.NewServer(&Counter{})
//	if err != nil { ... } // a method with an unsupported type fails here
//	addr, err := srv.Listen("") // 127.0.0.1 with a kernel-picked port
//	defer srv.Stop()
//
// NewServer accepts exported methods of these shapes (R and every argument
// must be encodable, see below; a variadic last parameter travels as a
// slice):
//
//	func (T) M([ctx context.Context,] args...)
//	func (T) M([ctx context.Context,] args...) error
//	func (T) M([ctx context.Context,] args...) R
//	func (T) M([ctx context.Context,] args...) (R, error)
//
// Any other exported method makes NewServer fail, naming the method and the
// offending type; WithoutMethods leaves methods out. The context, when
// present, is the call's: it ends when the caller cancels, its deadline
// passes, or the server stops. Methods run concurrently, one goroutine per
// call, so the served value must be safe for concurrent use.
//
// The server also registers the standard gRPC health service, reporting
// ServiceName SERVING from the first Serve or Listen until Stop.
//
// # Calling
//
//	c, err := courier.Dial(ctx, addr) // does not wait for the server
//	defer c.Close()
//	n, err := courier.CallT[int](ctx, c, "Add", 5) // typed result
//	v, err := c.Call(ctx, "Add", 5)                // v is int64(…)
//	f := courier.GoT[int](ctx, c, "Add", 1)        // future
//	n, err = f.Result(ctx)
//
// Calls wait for the server to be reachable by default (wait-for-ready), so
// a client may dial a node that is still starting. A future's Cancel cancels
// its RPC and the method's context on the server.
//
// Every response carries its result's type descriptor, so Call decodes
// results without asking the server for its method list first: basic types
// decode to themselves (int and uint arrive as int64 and uint64, which is how
// they travel), time.Duration and tensor.Tensor to themselves, composites to
// composites of those, and structs to unnamed struct types built with
// reflect.StructOf that have the server's field names. CallT and GoT decode
// into the caller's own type instead, after checking that it is compatible.
//
// # Errors
//
// Every error a Client returns is a gRPC status error; use status.Code.
// A method's status error (status.Error, or an error wrapping one) keeps its
// code and message; context errors become Canceled or DeadlineExceeded; other
// errors become Unknown with their message. An unknown method is
// Unimplemented; arguments whose number or types do not match the method
// are InvalidArgument, checked on the server before the method runs; a
// panicking method returns Internal with the panic value to its caller
// while the server goes on serving (the stack is logged).
//
// # Batching
//
// WithBatching gathers concurrent calls of a method into one call of a
// batch method taking slices, like Launchpad's batched_handler. Unlike
// there, waiting callers hold no worker of a fixed pool (gRPC runs each call
// in its own goroutine and one gatherer goroutine per batched method runs
// the batches), so callers outnumbering any pool cannot deadlock the server,
// and a caller whose context ends stops waiting at once.
//
// # Goroutines and shutdown
//
// A Server owns the goroutines of Listen and of the batch gatherers; Stop
// and GracefulStop wait for them and for every running method. A Client
// owns its futures' goroutines; Close fails the calls in flight and waits
// for them.
//
// # Wire format
//
// The gRPC service is "courier.Courier" with two unary methods whose
// messages are raw bytes (a forced gRPC codec, no protobuf). Below, str(s)
// is uvarint(len(s)) followed by the bytes of s, and uvarint is the unsigned
// LEB128 varint of encoding/binary.
//
//	Call request:         str(method) str(signature) value(arg1) value(arg2) …
//	Call response:        str(descriptor of the result, "" if none) value(result)
//	ListMethods request:  empty
//	ListMethods response: as a Call response whose result is a []MethodInfo
//
// The signature is the arguments' type descriptors joined by ",". An
// untyped nil argument has descriptor "nil" and no value; it is accepted for
// a pointer, slice or map parameter, which gets its nil value.
//
// # Type descriptors
//
// A descriptor names a wire type in Go syntax:
//
//	bool int8 int16 int32 int64 uint8 uint16 uint32 uint64
//	float32 float64 complex64 complex128 string duration tensor
//	[]T   [N]T   map[K]V   *T   struct{Name1 T1; Name2 T2}
//
// int and uint are int64 and uint64 on the wire (a value that does not fit
// a 32-bit int fails to decode there); named types are described by their
// underlying type, so type Reward float32 is "float32"; []byte is "[]uint8";
// time.Duration is "duration" and tensor.Tensor (internal/tensor) is
// "tensor". A struct lists its exported fields in declaration order, skipping
// fields tagged `courier:"-"`.
//
// Not encodable, rejected when a server registers a method or a client
// encodes an argument: interfaces (context.Context is allowed only as a
// method's first parameter), channels, functions, uintptr, unsafe.Pointer,
// recursive types, arrays longer than 1<<24, and structs whose fields are
// all unexported (time.Time among them: send a duration or UnixNano).
//
// # Values
//
// Values carry no type tags, only data, laid out by the descriptor:
//
//	bool                one byte, 0 or 1 (other bytes are malformed)
//	intN, uintN         N/8 bytes, little-endian, two's complement
//	floatN              the IEEE 754 bits as a uintN
//	complexN            real part then imaginary part, each a float(N/2)
//	duration            int64 nanoseconds
//	string              uvarint(len) then the bytes (not checked for UTF-8)
//	[]T, map[K]V        uvarint(0) for nil, else uvarint(n+1) then n
//	                    elements (maps: n key, value pairs in any order;
//	                    a repeated key is malformed)
//	[N]T                N elements, no length
//	*T                  byte 0 for nil, else byte 1 then the T
//	struct              its fields' values in order, nothing else
//	tensor              dtype byte, shape as uvarint(0) for nil else
//	                    uvarint(rank+1) and one uvarint per dimension, data
//	                    as uvarint(0) for nil else uvarint(len+1) and the
//	                    raw little-endian element bytes
//
// A tensor must be valid (tensor.Tensor.Validate) or the zero Tensor, on
// both sides. Slices of fixed-size numbers and bools, tensor data and
// []byte are copied as one block; decoded []byte and tensor data share
// memory with the received message, which nothing else uses.
//
// Decoding is strict and never panics on malformed input: every read is
// bounds-checked, lengths are capped by the bytes left in the message, and
// trailing bytes are an error. Descriptors received from a peer are parsed
// with limits on length, nesting and the size of the types they build.
//
// # Compatibility
//
// Two types are compatible when their descriptors are equal after removing
// struct field names: values are decoded by position, so a struct's fields
// may be renamed, but adding, removing, reordering or retyping one is an
// incompatible change. Incompatible arguments are rejected with
// InvalidArgument before the method runs, and CallT rejects an incompatible
// result type with InvalidArgument, instead of misreading data. To evolve an
// API, add a method rather than changing an existing one.
//
// Encoders and decoders are compiled once per Go type and cached; a call
// does not walk types again.
package courier
