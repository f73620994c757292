// Package version owns the build's stamp: its version and build time, set with -ldflags
// "-X dock/agent/version.Version=... -X dock/agent/version.BuildTime=...". It imports nothing.
package version

// Version is the build's version ("dev" unless stamped).
var Version = "dev"

// BuildTime is the build's time (RFC 3339), stamped at build time; "" when it was not
// (the agent then takes the commit time Go records from git).
var BuildTime = ""
