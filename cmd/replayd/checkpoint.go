package main

import (
	"flag"
	"time"

	"github.com/recall-rl/recall/replay"
)

// checkpointFlags are the checkpoint and durable-mode flags (see
// docs/checkpoints.md).
type checkpointFlags struct {
	dir               string
	interval          time.Duration
	keep              int
	durable           bool
	fsync             bool
	syncInterval      time.Duration
	reconcileInterval time.Duration
}

func bindCheckpointFlags(fs *flag.FlagSet, c *checkpointFlags) {
	fs.StringVar(&c.dir, "checkpoint-dir", "", "keep checkpoints in this `directory` and, at start, restore the newest state found there (see docs/checkpoints.md); empty: checkpoints off")
	fs.DurationVar(&c.interval, "checkpoint-interval", 0, "write a checkpoint this often (needs --checkpoint-dir); 0: only on request (replayctl checkpoint)")
	fs.IntVar(&c.keep, "checkpoint-keep", replay.DefaultCheckpointKeep, "how many complete checkpoints to keep; older ones are deleted")
	fs.BoolVar(&c.durable, "durable", false, "durable mode (needs --checkpoint-dir): every acknowledged insert, priority update, delete and reset is synced to a Pebble store under the checkpoint directory before it is acknowledged, so killing replayd loses nothing acknowledged")
	fs.BoolVar(&c.fsync, "durable-fsync", true, "durable mode: fsync the write-ahead log before acknowledging (survives a machine crash); false: only write it to the operating system, which survives killing replayd but not a machine crash, with half the disk writes on the acknowledgement path")
	fs.DurationVar(&c.syncInterval, "durable-sync-interval", 0, "durable mode: least time between two syncs of the write-ahead log (acknowledgements wait up to this long so that more share a sync); 0: sync as soon as possible")
	fs.DurationVar(&c.reconcileInterval, "durable-reconcile-interval", replay.DefaultReconcileInterval, "durable mode: how often changes made inside tables (evictions, deletes at max_times_sampled, times sampled, the limiter's sample count) are written")
}

// apply checks the flags and sets the server's checkpoint options. Errors
// are usageErrors.
func (c *checkpointFlags) apply(o *replay.ServerOptions) error {
	switch {
	case c.dir == "" && c.durable:
		return usagef("--durable needs --checkpoint-dir")
	case c.dir == "" && c.interval > 0:
		return usagef("--checkpoint-interval needs --checkpoint-dir")
	case c.keep < 1:
		return usagef("--checkpoint-keep %d: must be >= 1", c.keep)
	case c.interval < 0:
		return usagef("--checkpoint-interval %v: must be >= 0", c.interval)
	case c.syncInterval < 0:
		return usagef("--durable-sync-interval %v: must be >= 0", c.syncInterval)
	case c.reconcileInterval <= 0:
		return usagef("--durable-reconcile-interval %v: must be > 0", c.reconcileInterval)
	}
	o.Checkpoint = replay.CheckpointOptions{
		Dir:               c.dir,
		Interval:          c.interval,
		Keep:              c.keep,
		Durable:           c.durable,
		NoFsync:           !c.fsync,
		SyncInterval:      c.syncInterval,
		ReconcileInterval: c.reconcileInterval,
	}
	return nil
}
