// go-fuse's splice code does not build for 32-bit arm; lazyfs runs on the machine that runs
// the tests, never on the dock.

//go:build linux && !arm

// Command lazyfsd serves a lazyfs mount for the power-cut tests: it prints "ready" once
// mounted and "pending <bytes>" on SIGUSR1; SIGKILL is the power cut. Test tooling only.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"dock/agent/crashtest/lazyfs"
)

func main() {
	backing := flag.String("backing", "", "directory that stands for the disk")
	mount := flag.String("mount", "", "where to mount it")
	flag.Parse()
	l, err := lazyfs.Mount(*backing, *mount)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lazyfsd:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for range sig {
			fmt.Printf("pending %d\n", l.Pending())
		}
	}()
	fmt.Println("ready")
	l.Wait()
}
