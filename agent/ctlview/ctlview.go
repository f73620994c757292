// Package ctlview owns the views the dock agent's control socket answers with, which dockctl
// reads; it holds values only, so dockctl links no database, GPIO or metrics code.
package ctlview

import "dock/queue/record"

// QueueView is the control socket's queue summary.
type QueueView struct {
	Stats   record.Stats       `json:"stats"`
	Pending []record.Recording `json:"pending"`
}

// LedgerCheck is the result of verifying the ledger's hash chain.
type LedgerCheck struct {
	Entries int    `json:"entries"`
	OK      bool   `json:"ok"`
	BadSeq  uint64 `json:"bad_seq,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// AnchorSeq and AnchorHash: the ledger head central last acknowledged, which the
	// entry at AnchorSeq must match (0: none yet, the chain alone was checked).
	AnchorSeq  uint64 `json:"anchor_seq,omitempty"`
	AnchorHash string `json:"anchor_hash,omitempty"`
}
