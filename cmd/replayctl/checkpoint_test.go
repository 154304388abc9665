package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recall-rl/recall/replay"
)

// flipByte corrupts the largest file of a checkpoint's store.
func flipByte(t *testing.T, ckpt string) {
	t.Helper()
	var best string
	var size int64
	_ = filepath.WalkDir(ckpt, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".json") {
			if info, err := d.Info(); err == nil && info.Size() > size {
				best, size = p, info.Size()
			}
		}
		return nil
	})
	data, err := os.ReadFile(best)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(best, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReplayctlCheckpoint(t *testing.T) {
	dir := t.TempDir()
	addr, srv := startServer(t, replay.ServerOptions{Checkpoint: replay.CheckpointOptions{Dir: dir}})
	insert(t, srv, "replay", []float64{1, 2, 3})
	insert(t, srv, "queue", []float64{1, 1})
	for srv.Table("queue").CanSample(1) {
		if _, err := srv.Table("queue").Sample(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
	}
	r := ctl(t, "--addr", addr, "checkpoint")
	r.check(t, 0, []string{dir + string(filepath.Separator) + "ckpt-"}, nil)
	path := strings.TrimSpace(r.stdout)
	srv.Stop()

	ctl(t, "checkpoint", "ls", dir).check(t, 0, []string{"NAME", "* " + filepath.Base(path), "checkpoint", "  2  ", " ok\n",
		"* what replayd --checkpoint-dir " + dir + " would restore"}, nil)

	r = ctl(t, "checkpoint", "ls", dir, "--json")
	r.check(t, 0, nil, nil)
	var list []checkpointJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if len(list) != 1 || !list[0].Restore || list[0].Status != "ok" || len(list[0].Tables) != 2 || list[0].Tables[0].Items != 3 || list[0].NumChunks != 3 {
		t.Errorf("ls --json: %+v", list)
	}

	// inspect a directory shows what a server would restore.
	for _, p := range []string{dir, path} {
		ctl(t, "checkpoint", "inspect", p, "--items", "2").check(t, 0, []string{
			"checkpoint " + path, "status: ok", "2 tables, 3 chunks",
			"TABLE", "replay", "prioritized(0.6)", "queue", "Queue(10)",
			"queue: signature: obs float32[2]",
			"queue: once restored (with these options), sampling is blocked: ",
			"KEY", "PRIORITY",
		}, nil)
	}
	r = ctl(t, "checkpoint", "inspect", path, "--json", "--items", "-1")
	var one checkpointJSON
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	q := one.Tables[1]
	if one.Status != "ok" || len(one.Items) != 3 || q.Name != "queue" || q.Samples != 2 || q.Inserts != 2 || q.SampleBlockedReason == "" || q.Signature[0].Name != "obs" {
		t.Errorf("inspect --json: %+v", one)
	}

	// Restored, the limiter counters and the reason sampling blocks show in
	// info.
	addr2, srv2 := startServer(t, replay.ServerOptions{Checkpoint: replay.CheckpointOptions{Dir: dir}})
	r = ctl(t, "--addr", addr2, "info", "--json")
	var info infoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if qi := info.Tables[1]; qi.Name != "queue" || qi.Inserts != 2 || qi.Samples != 2 || qi.Deletes != 2 || qi.SampleBlockedReason != q.SampleBlockedReason {
		t.Errorf("restored queue info %+v, want the checkpoint's counters and %q", qi, q.SampleBlockedReason)
	}
	ctl(t, "--addr", addr2, "info").check(t, 0, []string{"queue: sampling blocked: " + q.SampleBlockedReason}, nil)
	srv2.Stop()

	// A corrupt checkpoint is reported as such.
	flipByte(t, path)
	ctl(t, "checkpoint", "ls", dir).check(t, 0, []string{"corrupt checkpoint", "fails its checksum"}, nil)
	ctl(t, "checkpoint", "inspect", path).check(t, 1, []string{"status: replay: corrupt checkpoint"}, []string{"replayctl: checkpoint inspect: ", "corrupt checkpoint"})
	ctl(t, "checkpoint", "inspect", dir).check(t, 1, nil, []string{"no usable checkpoint in " + dir})
}

func TestReplayctlCheckpointDurable(t *testing.T) {
	dir := t.TempDir()
	_, srv := startServer(t, replay.ServerOptions{Checkpoint: replay.CheckpointOptions{Dir: dir, Durable: true}})
	ctl(t, "checkpoint", "ls", dir).check(t, 0, []string{"durable", "in use by a running server"}, nil)
	srv.Stop()
	ctl(t, "checkpoint", "ls", dir).check(t, 0, []string{"* durable", " ok\n"}, nil)
	ctl(t, "checkpoint", "inspect", filepath.Join(dir, "durable")).check(t, 0, []string{"durable " + filepath.Join(dir, "durable"), "last write: ", "status: ok"}, nil)
}

func TestReplayctlCheckpointUsage(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{[]string{"checkpoint", "ls"}, 2, nil, []string{"replayctl checkpoint ls: missing arguments"}},
		{[]string{"checkpoint", "ls", "a", "b"}, 2, nil, []string{"unexpected arguments: b"}},
		{[]string{"checkpoint", "inspect"}, 2, nil, []string{"replayctl checkpoint inspect: missing arguments"}},
		{[]string{"checkpoint", "ls", filepath.Join(t.TempDir(), "none")}, 1, nil, []string{"replayctl: checkpoint ls: ", "no such file"}},
		{[]string{"checkpoint", "inspect", t.TempDir()}, 1, nil, []string{"no checkpoint in"}},
		{[]string{"checkpoint", "ls", t.TempDir()}, 0, []string{"no checkpoints in"}, nil},
		{[]string{"help", "checkpoint"}, 0, []string{"checkpoint ls DIR", "checkpoint inspect PATH", "--timeout"}, nil},
		{[]string{"checkpoint", "inspect", "-h"}, 0, []string{"checkpoint inspect PATH", "-items"}, nil},
	} {
		ctl(t, tt.args...).check(t, tt.code, tt.stdout, tt.stderr)
	}
}
