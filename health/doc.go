// Package health owns the rules that turn camera and dock readings into fault verdicts, and
// the fault lifecycle. Pure functions over values: no I/O, no clock, no goroutines.
package health
