// Package hw owns the dock's hardware drivers: each slot's presence, charge and LED lines
// over periph.io GPIO, and opening a file on a camera's storage strictly beneath its mount.
package hw
