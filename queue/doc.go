// Package queue owns the dock's durable state: write-once spool files, the Badger records of
// recordings and their states, and the hash-chained audit ledger. It never frees unverified footage.
package queue
