package launch

import "syscall"

// procAttr puts a child in process group pgid (a new group led by the child
// if 0) and has the kernel send it deathSig when the launcher dies.
func procAttr(pgid int, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pgid: pgid, Pdeathsig: deathSig}
}
