//go:build unix && !linux

package throwaway

import "syscall"

// sysProcAttr runs a child in its own process group as cred (nil: the current user).
// Outside Linux there is no parent-death signal: only Stop or Kill end the server.
func sysProcAttr(cred *syscall.Credential, _ bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
