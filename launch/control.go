package launch

import (
	"context"
	"crypto/subtle"
	"fmt"
	"hash/fnv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recall-rl/recall/program"
)

// Environment variables that make a process a local_mp child. The
// launcher sets them; the child reads and unsets them, so processes the
// node starts do not inherit them.
const (
	envRole        = "RECALL_LP_ROLE" // "node" or "keeper"
	envNode        = "RECALL_LP_NODE" // node ID, label/index[/member]
	envControl     = "RECALL_LP_CONTROL"
	envToken       = "RECALL_LP_TOKEN"
	envParent      = "RECALL_LP_PARENT" // launcher PID
	envAttempt     = "RECALL_LP_ATTEMPT"
	envFingerprint = "RECALL_LP_FINGERPRINT"
	envAddrs       = "RECALL_LP_ADDRS" // previous addresses: id=addr,...
	envDisableRun  = "RECALL_LP_DISABLE_RUN"
)

var allEnv = []string{envRole, envNode, envControl, envToken, envParent, envAttempt, envFingerprint, envAddrs, envDisableRun}

// report is what a child says about how its node ended.
type report struct {
	attempt int
	msg     string // the node's error, "" if it ended cleanly
}

// control is the launcher's courier service for its children: they
// register the addresses they bound, resolve the addresses of the nodes
// they hold handles to, wait for the stop, ask for it, and report how
// their node ended.
type control struct {
	r     *Run
	token string

	mu      sync.Mutex
	reports map[string]report // node ID -> last report
}

func (c *control) check(token string) error {
	if subtle.ConstantTimeCompare([]byte(token), []byte(c.token)) != 1 {
		return status.Error(codes.PermissionDenied, "launch: bad control token")
	}
	return nil
}

// Register records the address node id bound.
func (c *control) Register(ctx context.Context, token, id, addr string) error {
	if err := c.check(token); err != nil {
		return err
	}
	if err := c.r.table.set(id, addr); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

// Resolve returns the address of node id, waiting until it registered.
func (c *control) Resolve(ctx context.Context, token, id string) (string, error) {
	if err := c.check(token); err != nil {
		return "", err
	}
	addr, err := c.r.table.wait(ctx, id, c.r.stopping)
	switch {
	case err == nil:
		return addr, nil
	case err == errStopping:
		return "", status.Error(codes.Unavailable, err.Error())
	case ctx.Err() != nil:
		return "", status.FromContextError(ctx.Err()).Err()
	}
	return "", status.Error(codes.NotFound, err.Error())
}

// WaitStop returns when the program begins to stop.
func (c *control) WaitStop(ctx context.Context, token string) error {
	if err := c.check(token); err != nil {
		return err
	}
	select {
	case <-c.r.stopping:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// Stop stops the program, at the request of node id.
func (c *control) Stop(ctx context.Context, token, id string) error {
	if err := c.check(token); err != nil {
		return err
	}
	c.r.log.Debug("stop requested", "node", id)
	c.r.Stop()
	return nil
}

// Report records how attempt of node id ended, just before it exits: msg
// is its error, "" if it ended cleanly (the exit status tells the rest).
func (c *control) Report(ctx context.Context, token, id string, attempt int, msg string) error {
	if err := c.check(token); err != nil {
		return err
	}
	c.mu.Lock()
	c.reports[id] = report{attempt: attempt, msg: msg}
	c.mu.Unlock()
	return nil
}

// takeReport returns and forgets the report of attempt of id.
func (c *control) takeReport(id string, attempt int) (report, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep, ok := c.reports[id]
	if !ok || rep.attempt != attempt {
		return report{}, false
	}
	delete(c.reports, id)
	return rep, true
}

// fingerprint summarises a program's structure, so that a child can check
// it built the same program as its launcher.
func fingerprint(p *program.Program) string {
	h := fnv.New64a()
	var walk func(ni program.NodeInfo)
	walk = func(ni program.NodeInfo) {
		fmt.Fprintf(h, "%s:%s;", ni.ID, ni.Kind)
		for _, m := range ni.Members {
			walk(m)
		}
	}
	for _, ni := range p.Nodes() {
		walk(ni)
	}
	return fmt.Sprintf("%x", h.Sum64())
}
