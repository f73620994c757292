// Package vm owns the emulated arm64 dock board with the shipped .deb (level 2 of the VM
// tests): a Debian root file system under qemu-system-aarch64, hot-plugged cameras, power cuts. Test only.
package vm
