package program

import (
	"context"
	"fmt"
	"reflect"
)

// None is the client type of nodes that serve nothing: function nodes and
// colocations. Their handles cannot be dereferenced.
type None struct{}

// Handle refers to a node of a program. Pass it to another node's function
// or constructor (that makes an edge of the program graph; the node gets the
// dereferenced client C), or call Dereference while the program runs.
//
// A Handle is a small value: copy it freely. The zero Handle refers to no
// node.
type Handle[C any] struct {
	n *nodeBase
}

// handleValue is implemented by every Handle[C]; arguments of this type are
// dereferenced before a node's function or constructor runs.
type handleValue interface {
	handleNode() *nodeBase
	handleClientType() reflect.Type
}

func (h Handle[C]) handleNode() *nodeBase { return h.n }

func (h Handle[C]) handleClientType() reflect.Type { return clientTypeOf[C]() }

func clientTypeOf[C any]() reflect.Type { return reflect.TypeFor[C]() }

var handleValueType = reflect.TypeFor[handleValue]()

// Node returns the ID of the handle's node; ok is false if the node has not
// been added to a program yet.
func (h Handle[C]) Node() (id NodeID, ok bool) {
	if h.n == nil || h.n.entry == nil {
		return NodeID{}, false
	}
	return h.n.entry.id, true
}

// String returns the node's ID and kind.
func (h Handle[C]) String() string {
	if h.n == nil {
		return "Handle(nil)"
	}
	if h.n.entry == nil {
		return fmt.Sprintf("Handle(unadded %s node)", h.n.kind)
	}
	return fmt.Sprintf("Handle(%s %s)", h.n.kind, h.n.entry.id)
}

// Dereference returns a new client of the handle's node, resolving its
// address through the launcher: *courier.Client for a courier node,
// *replay.Client for a replay node. It waits until the node has bound its
// port and registered its address (nodes may start in any order), or until
// ctx ends or the program stops.
//
// The caller owns the client and should Close it when done; clients still
// open when the launch ends are closed then. Clients made for a node's
// function or constructor arguments are owned by the runtime and closed when
// that node ends.
func (h Handle[C]) Dereference(ctx context.Context) (C, error) {
	var zero C
	if h.n == nil {
		return zero, fmt.Errorf("program: Dereference of a zero Handle")
	}
	e := h.n.entry
	if e == nil {
		return zero, fmt.Errorf("program: Dereference: the %s node was never added to a program", h.n.kind)
	}
	rt := e.prog.binding()
	if rt == nil {
		return zero, fmt.Errorf("%w: dereference %s", ErrNotLaunched, e.id)
	}
	c, err := rt.dereference(ctx, e)
	if err != nil {
		return zero, err
	}
	return c.(C), nil
}
