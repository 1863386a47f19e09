//go:build !linux

package main

import "syscall"

// childAttr: no parent-death signal outside Linux (where bench cannot read
// /proc anyway).
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
