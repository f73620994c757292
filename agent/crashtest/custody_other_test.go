//go:build !linux

package crashtest

import "os/exec"

func orphanProof(*exec.Cmd) {}
