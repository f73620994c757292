// Package crashtest owns the crash-consistency tests: the real agent process on a simulated
// dock with a real mosquitto, killed with SIGKILL at random moments. Tests only.
package crashtest
