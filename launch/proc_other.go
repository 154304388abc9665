//go:build unix && !linux

package launch

import "syscall"

// procAttr puts a child in process group pgid (a new group led by the child
// if 0). Without a parent-death signal on this system, children notice the
// launcher's death through the control service only (they stop themselves),
// and the keeper through EOF on its stdin.
func procAttr(pgid int, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
}
