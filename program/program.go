package program

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Errors reported by Validate, Lookup and Run. Test with errors.Is.
var (
	// ErrInvalidProgram marks every error found while building a program:
	// a bad label, a node added twice, a function whose arguments do not
	// match its parameters, a handle of a node outside the program.
	ErrInvalidProgram = errors.New("program: invalid program")
	// ErrNotFound: no node has the given ID.
	ErrNotFound = errors.New("program: node not found")
	// ErrNotLaunched: a handle was dereferenced while its program is not
	// launched (not bound to a launcher).
	ErrNotLaunched = errors.New("program: not launched")
	// ErrStopped is the cause of a node context's cancellation when the
	// program stops (context.Cause(ctx) == ErrStopped).
	ErrStopped = errors.New("program: stopped")
	// ErrNoClient: the handle's node serves nothing (a function node or a
	// colocation), so there is no client to dereference.
	ErrNoClient = errors.New("program: node has no client")
)

// Kind is the kind of a node.
type Kind int

// Node kinds.
const (
	KindFunc Kind = iota + 1
	KindCourier
	KindReplay
	KindThreadColocation
	KindProcessColocation
)

func (k Kind) String() string {
	switch k {
	case KindFunc:
		return "func"
	case KindCourier:
		return "courier"
	case KindReplay:
		return "replay"
	case KindThreadColocation:
		return "thread_colocation"
	case KindProcessColocation:
		return "process_colocation"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// NodeID identifies a node of a program. Nodes added with AddNode are
// Label/Index, Index counting the nodes that share the label (the label's
// group) from 0; a node inside a colocation is Label/Index/Member, Member
// counting the colocation's members from 0. Member is -1 for a node added
// with AddNode.
type NodeID struct {
	Label  string
	Index  int
	Member int
}

// ID returns the NodeID of the index-th node labelled label.
func ID(label string, index int) NodeID { return NodeID{Label: label, Index: index, Member: -1} }

// IsMember reports whether id names a node inside a colocation.
func (id NodeID) IsMember() bool { return id.Member >= 0 }

// Parent returns the colocation holding id, or id itself if it is not a
// member.
func (id NodeID) Parent() NodeID { return ID(id.Label, id.Index) }

// String returns "label/index" or "label/index/member".
func (id NodeID) String() string {
	s := id.Label + "/" + strconv.Itoa(id.Index)
	if id.Member >= 0 {
		s += "/" + strconv.Itoa(id.Member)
	}
	return s
}

// ParseNodeID parses the form NodeID.String returns.
func ParseNodeID(s string) (NodeID, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return NodeID{}, fmt.Errorf("program: bad node ID %q: want label/index[/member]", s)
	}
	idx, err := strconv.Atoi(parts[1])
	if err != nil || idx < 0 {
		return NodeID{}, fmt.Errorf("program: bad node ID %q: bad index", s)
	}
	id := ID(parts[0], idx)
	if len(parts) == 3 {
		m, err := strconv.Atoi(parts[2])
		if err != nil || m < 0 {
			return NodeID{}, fmt.Errorf("program: bad node ID %q: bad member", s)
		}
		id.Member = m
	}
	return id, nil
}

// validLabel reports whether s may be a label: non-empty, letters, digits,
// '_', '-' and '.', so that it fits file names, tmux windows and IDs.
func validLabel(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}

// NodeInfo describes a node of a program.
type NodeInfo struct {
	ID   NodeID
	Kind Kind
	// Addressable reports whether the node serves (courier and replay
	// nodes) and so registers an address when it runs.
	Addressable bool
	// Members are the nodes of a colocation, in order.
	Members []NodeInfo
}

// Program is a graph of nodes built by a deterministic function: nodes are
// added with AddNode, and a handle passed to another node's function or
// constructor is an edge. A launcher (package launch) runs it.
//
// Building a program is not safe for concurrent use; once built, its
// methods are safe for concurrent use.
type Program struct {
	name string

	// Set while building; read-only afterwards.
	nodes   []*entry            // added with AddNode, in order
	byLabel map[string][]*entry // label -> group, in order
	labels  []string            // labels in order of first use
	errs    []error

	mu struct {
		sync.Mutex
		rt *binding // non-nil while bound to a launcher
	}
}

// entry is a node's place in a program.
type entry struct {
	prog    *Program
	id      NodeID
	node    *nodeBase
	members []*entry
	parent  *entry
}

// New returns an empty program.
func New(name string) *Program {
	return &Program{name: name, byLabel: map[string][]*entry{}}
}

// Name returns the program's name.
func (p *Program) Name() string { return p.name }

func (p *Program) errorf(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidProgram}, args...)...))
}

// AddNode adds n to p under label and returns its handle, typed by the
// client the node's handle dereferences to (*courier.Client for a courier
// node, *replay.Client for a replay node, None for a function node or a
// colocation).
//
// Nodes that share a label form a group, Launchpad's
// `with program.group(label)`: they are label/0, label/1, ... and share
// launch settings such as a restart policy. AddNode is a function rather
// than a method because Go methods cannot have type parameters.
//
// Mistakes (a bad label, a node added twice, arguments that do not fit a
// function) do not panic: they are recorded, and Validate, and so Launch,
// returns them.
func AddNode[C any](p *Program, label string, n Node[C]) Handle[C] {
	b := n.base()
	h := Handle[C]{n: b}
	if !validLabel(label) {
		p.errorf("label %q: want letters, digits, '_', '-' or '.'", label)
		return h
	}
	if b.entry != nil {
		p.errorf("label %q: the %s node is already %s", label, b.kind, where(b.entry))
		return h
	}
	e := &entry{prog: p, id: ID(label, len(p.byLabel[label])), node: b}
	b.entry = e
	if len(p.byLabel[label]) == 0 {
		p.labels = append(p.labels, label)
	}
	p.byLabel[label] = append(p.byLabel[label], e)
	p.nodes = append(p.nodes, e)
	for i, m := range b.members {
		if m.entry != nil {
			p.errorf("node %s: member %d: the %s node is already %s", e.id, i, m.kind, where(m.entry))
			continue
		}
		me := &entry{prog: p, id: NodeID{Label: label, Index: e.id.Index, Member: i}, node: m, parent: e}
		m.entry = me
		e.members = append(e.members, me)
	}
	for _, err := range b.errs {
		p.errs = append(p.errs, fmt.Errorf("%w: node %s: %w", ErrInvalidProgram, e.id, err))
	}
	return h
}

func where(e *entry) string {
	if e.parent != nil {
		return fmt.Sprintf("member %s of program %q", e.id, e.prog.name)
	}
	return fmt.Sprintf("node %s of program %q", e.id, e.prog.name)
}

// Nodes returns the nodes added with AddNode, in order, with their members.
func (p *Program) Nodes() []NodeInfo {
	out := make([]NodeInfo, 0, len(p.nodes))
	for _, e := range p.nodes {
		out = append(out, e.info())
	}
	return out
}

func (e *entry) info() NodeInfo {
	ni := NodeInfo{ID: e.id, Kind: e.node.kind, Addressable: e.node.addressable()}
	for _, m := range e.members {
		ni.Members = append(ni.Members, m.info())
	}
	return ni
}

// Labels returns the program's labels (its groups) in order of first use.
func (p *Program) Labels() []string { return append([]string(nil), p.labels...) }

// Group returns the IDs of the nodes labelled label, in order.
func (p *Program) Group(label string) []NodeID {
	var ids []NodeID
	for _, e := range p.byLabel[label] {
		ids = append(ids, e.id)
	}
	return ids
}

// lookup finds the entry of id, a node or a colocation member.
func (p *Program) lookup(id NodeID) (*entry, error) {
	g := p.byLabel[id.Label]
	if id.Index < 0 || id.Index >= len(g) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e := g[id.Index]
	if id.Member < 0 {
		return e, nil
	}
	if id.Member >= len(e.members) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e.members[id.Member], nil
}

// Validate returns the mistakes recorded while building p, joined, or nil.
// Every such error matches ErrInvalidProgram. It also checks that every
// handle passed to a node belongs to a node of p.
func (p *Program) Validate() error {
	errs := append([]error(nil), p.errs...)
	if len(p.nodes) == 0 {
		errs = append(errs, fmt.Errorf("%w: program %q has no nodes", ErrInvalidProgram, p.name))
	}
	var check func(e *entry)
	check = func(e *entry) {
		for _, h := range e.node.handles() {
			switch {
			case h == nil:
				errs = append(errs, fmt.Errorf("%w: node %s: takes a zero Handle", ErrInvalidProgram, e.id))
			case h.entry == nil:
				errs = append(errs, fmt.Errorf("%w: node %s: takes a handle of a %s node that was never added to a program", ErrInvalidProgram, e.id, h.kind))
			case h.entry.prog != p:
				errs = append(errs, fmt.Errorf("%w: node %s: takes a handle of %s", ErrInvalidProgram, e.id, where(h.entry)))
			case !h.addressable():
				errs = append(errs, fmt.Errorf("%w: node %s: takes a handle of %s, a %s node, which serves nothing", ErrInvalidProgram, e.id, h.entry.id, h.kind))
			}
		}
		for _, m := range e.members {
			check(m)
		}
	}
	for _, e := range p.nodes {
		check(e)
	}
	return errors.Join(errs...)
}

// Lookup returns the handle of the node id (a node or a colocation member)
// typed by its client, for tests and tools that did not keep the handle
// AddNode returned. It fails if there is no such node or its client is not C.
func Lookup[C any](p *Program, id NodeID) (Handle[C], error) {
	e, err := p.lookup(id)
	if err != nil {
		return Handle[C]{}, err
	}
	h := Handle[C]{n: e.node}
	if want, got := clientTypeOf[C](), e.node.clientType; want != got {
		return Handle[C]{}, fmt.Errorf("program: Lookup %s: the %s node's handle dereferences to %v, not %v", id, e.node.kind, got, want)
	}
	return h, nil
}
