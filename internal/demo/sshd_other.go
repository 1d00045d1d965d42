//go:build !linux

package demo

import "os/exec"

// dieWithParent does nothing outside Linux, which has no parent-death
// signal.
func dieWithParent(*exec.Cmd) {}
