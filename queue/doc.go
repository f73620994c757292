// Package queue owns the dock's durable state: write-once spool files, the Badger records of
// recordings and their states, and the hash-chained audit ledger. It never frees unverified footage.
//
// Spool files are encrypted for the dock's age key (LoadKey). On a real board that key lives
// on the root filesystem (/etc/dock-agent/spool.key) or on a partition of its own, never on
// the spool's medium: a card or disk pulled from the dock then carries only ciphertext. The
// key file, like every secret the agent reads (ReadSecretFile), must be mode 0600 or
// stricter and owned by the agent's user, or it is refused.
package queue
