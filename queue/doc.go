// Package queue owns the dock's durable state: write-once spool files, the Badger records of
// recordings and their states, and the hash-chained audit ledger. It never frees unverified footage.
//
// The files: store.go opens the Badger database (its key layout) and answers reads;
// custody.go moves a recording through its states (Commit, Lease, Verify, Free...);
// offload.go takes a camera file into custody (Offload) and import.go writes records in
// bulk; group.go commits writes in groups; ledger.go and anchor.go keep the hash-chained
// ledger; docs.go stores the agent's documents (d/<kind>/<id>: bay states, faults, config,
// device histories) beside the recordings, each written in the transaction of its ledger
// entry; spool.go writes and reads the footage files.
//
// Spool files are encrypted for the dock's age key (LoadKey). On a real board that key lives
// on the root filesystem (/etc/dock-agent/spool.key) or on a partition of its own, never on
// the spool's medium: a card or disk pulled from the dock then carries only ciphertext. The
// key file, like every secret the agent reads (secret.ReadFile), must be mode 0600 or
// stricter and owned by the agent's user, or it is refused.
package queue
