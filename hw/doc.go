// Package hw owns the dock's slot hardware: the presence, charge-enable and LED lines of
// each slot over periph.io GPIO. It reports what the lines say and never decides policy.
package hw
