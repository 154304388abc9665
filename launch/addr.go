package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/recall-rl/recall/program"
)

// errStopping is returned to address lookups once the program stops.
var errStopping = errors.New("launch: program is stopping")

// addrTable is the launcher's table of node addresses: nodes register the
// address they bound, and lookups wait for it. The launcher owns it; no
// port is picked before a node binds it.
type addrTable struct {
	mu      sync.Mutex
	valid   map[string]bool   // IDs of serving nodes
	addrs   map[string]string // registered addresses
	changed chan struct{}     // closed and replaced on every registration
}

func newAddrTable(p *program.Program) *addrTable {
	t := &addrTable{valid: map[string]bool{}, addrs: map[string]string{}, changed: make(chan struct{})}
	var walk func(ni program.NodeInfo)
	walk = func(ni program.NodeInfo) {
		if ni.Addressable {
			t.valid[ni.ID.String()] = true
		}
		for _, m := range ni.Members {
			walk(m)
		}
	}
	for _, ni := range p.Nodes() {
		walk(ni)
	}
	return t
}

func (t *addrTable) set(id, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("launch: register %s: bad address %q", id, addr)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.valid[id] {
		return fmt.Errorf("launch: register: %s is not a serving node of the program", id)
	}
	t.addrs[id] = addr
	close(t.changed)
	t.changed = make(chan struct{})
	return nil
}

// get returns the registered address of id, or "".
func (t *addrTable) get(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addrs[id]
}

// wait returns the address of id once registered; it fails when ctx ends
// or stop is closed first.
func (t *addrTable) wait(ctx context.Context, id string, stop <-chan struct{}) (string, error) {
	for {
		t.mu.Lock()
		if !t.valid[id] {
			t.mu.Unlock()
			return "", fmt.Errorf("%w: %s is not a serving node of the program", program.ErrNotFound, id)
		}
		addr, ch := t.addrs[id], t.changed
		t.mu.Unlock()
		if addr != "" {
			return addr, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", context.Cause(ctx)
		case <-stop:
			return "", errStopping
		}
	}
}

// listen binds a loopback port for a node: prefer, the node's previous
// address when it restarts (so its clients reconnect), else one the kernel
// picks.
func listen(prefer string) (net.Listener, error) {
	if prefer != "" {
		if lis, err := net.Listen("tcp", prefer); err == nil {
			return lis, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}
