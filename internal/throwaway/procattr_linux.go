package throwaway

import "syscall"

// sysProcAttr runs a child in its own process group (so Kill reaches its children
// too) as cred (nil: the current user). With deathSignal, the kernel kills the child
// when the thread that started it dies: a safety net for when Stop is never called.
// The kernel applies it after the credential change, which would otherwise clear it.
func sysProcAttr(cred *syscall.Credential, deathSignal bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if deathSignal {
		attr.Pdeathsig = syscall.SIGKILL
	}
	return attr
}
