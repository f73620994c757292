// Package wire owns the MQTT API between docks and central: topic names, payload types and
// the binary chunk format (see ../API.md). Shared by the dock and the central receiver; no I/O.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Topic roots. Docks publish under DockRoot/<dock>/ and subscribe under
// CentralRoot/<dock>/; an ACL can then confine each dock to its own subtree.
const (
	DockRoot    = "dock/v1"
	CentralRoot = "central/v1"
)

// Dock-to-central topic leaves.
const (
	TopicStatus    = "status"          // retained, QoS 1: online/offline, last will
	TopicTelemetry = "telemetry"       // QoS 0
	TopicAlert     = "alert"           // QoS 1
	TopicBacklog   = "backlog"         // QoS 1
	TopicBegin     = "transfer/begin"  // QoS 1
	TopicChunk     = "transfer/chunk"  // QoS 1, binary
	TopicEnd       = "transfer/end"    // QoS 1
	TopicReported  = "config/reported" // retained, QoS 1
	TopicLedger    = "ledger"          // QoS 1: ledger entries exported to central
	TopicHealth    = "health"          // QoS 1: one device health sample per docking
)

// Central-to-dock topic leaves.
const (
	TopicGrant   = "grant"   // QoS 1
	TopicAck     = "ack"     // QoS 1
	TopicReceipt = "receipt" // QoS 1
	TopicConfig  = "config"  // retained, QoS 1: desired config
	TopicCommand = "command" // QoS 1
	// TopicLedgerAck, QoS 1: central's signed acknowledgement of the dock's ledger head.
	TopicLedgerAck = "ledger-ack"
)

// DockTopic is the topic a dock publishes leaf on.
func DockTopic(dock, leaf string) string { return DockRoot + "/" + dock + "/" + leaf }

// CentralTopic is the topic central publishes leaf on for a dock.
func CentralTopic(dock, leaf string) string { return CentralRoot + "/" + dock + "/" + leaf }

// SplitTopic returns the dock id and leaf of a topic under root, or ok=false.
func SplitTopic(root, topic string) (dock, leaf string, ok bool) {
	rest, found := strings.CutPrefix(topic, root+"/")
	if !found {
		return "", "", false
	}
	dock, leaf, found = strings.Cut(rest, "/")
	if !found || dock == "" || leaf == "" {
		return "", "", false
	}
	return dock, leaf, true
}

// StatusMsg is the dock's presence; the broker publishes State "offline" as its will.
type StatusMsg struct {
	State   string    `json:"state"` // online | offline
	Version string    `json:"version,omitempty"`
	Time    time.Time `json:"time,omitzero"`
}

// SlotTelemetry is one slot in a telemetry message.
type SlotTelemetry struct {
	Slot     int      `json:"slot"`
	State    string   `json:"state"`
	Device   string   `json:"device,omitempty"`
	Officer  string   `json:"officer,omitempty"`
	Battery  *Battery `json:"battery,omitempty"`
	Storage  *Storage `json:"storage,omitempty"`
	Charging bool     `json:"charging"`
	Faults   []string `json:"faults,omitempty"`
	// LastsShift: will the battery, as charged now, last a 12-hour shift.
	LastsShift *bool `json:"lasts_shift,omitempty"`
	// ServiceDue is when battery health is predicted to cross the service threshold.
	ServiceDue time.Time `json:"service_due,omitzero"`
}

// Battery is a camera battery as reported to central.
type Battery struct {
	ChargePct int     `json:"charge_pct"`
	HealthPct int     `json:"health_pct"`
	TempC     float64 `json:"temp_c"`
	Cycles    int     `json:"cycles"`
	VoltageMV int     `json:"voltage_mv"`
}

// Storage is a camera's storage as reported to central.
type Storage struct {
	Capacity  int64 `json:"capacity"`
	Free      int64 `json:"free"`
	BadBlocks int   `json:"bad_blocks"`
	WearPct   int   `json:"wear_pct"`
	Errors    int   `json:"errors"`
}

// QueueTelemetry summarises the dock's queue.
type QueueTelemetry struct {
	Pending      int       `json:"pending"`
	PendingBytes int64     `json:"pending_bytes"`
	Verified     int       `json:"verified"`
	Freed        int       `json:"freed"`
	Oldest       time.Time `json:"oldest,omitzero"`
	SpoolFree    uint64    `json:"spool_free"`
}

// TelemetryMsg is the dock's periodic report.
type TelemetryMsg struct {
	Time   time.Time       `json:"time"`
	Slots  []SlotTelemetry `json:"slots"`
	Queue  QueueTelemetry  `json:"queue"`
	Config int64           `json:"config_version"`
	// BoardTempC is the dock board's temperature, where the board exposes one.
	BoardTempC *float64 `json:"board_temp_c,omitempty"`
}

// AlertMsg is a fault alert for maintenance. It is sent again until acknowledged.
type AlertMsg struct {
	ID       string    `json:"id"` // device/code: stable, so central can deduplicate
	Device   string    `json:"device"`
	Slot     int       `json:"slot"`
	Code     string    `json:"code"`
	Detail   string    `json:"detail"`
	State    string    `json:"state"`
	RaisedAt time.Time `json:"raised_at"`
	Attempt  int       `json:"attempt"`
}

// HealthMsg is one docking's health sample of a device, so central keeps each device's
// history across docks.
type HealthMsg struct {
	Device     string    `json:"device"`
	Time       time.Time `json:"time"`
	HealthPct  int       `json:"health_pct"`
	Cycles     int       `json:"cycles"`
	BadBlocks  int       `json:"bad_blocks"`
	Errors     int       `json:"errors"`
	ServiceDue time.Time `json:"service_due,omitzero"`
}

// BacklogMsg announces what waits to upload.
type BacklogMsg struct {
	Count  int       `json:"count"`
	Bytes  int64     `json:"bytes"`
	Oldest time.Time `json:"oldest,omitzero"`
	Time   time.Time `json:"time"`
}

// RecordingMeta is what central files a recording under (article 17).
type RecordingMeta struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Device     string    `json:"device"`
	Officer    string    `json:"officer"`
	Team       string    `json:"team"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Class      string    `json:"class"`
	Hold       string    `json:"hold,omitempty"`
	ClockDrift int64     `json:"clock_drift_ms,omitempty"`
	// ClockUnverified: the dock could not trust its own clock when it took the recording
	// (its times may be wrong; the camera's clock was not set from it).
	ClockUnverified bool `json:"clock_unverified,omitempty"`
}

// BeginMsg opens (or resumes) a recording's transfer.
type BeginMsg struct {
	Transfer  string        `json:"transfer"`
	Recording RecordingMeta `json:"recording"`
	Size      int64         `json:"size"`
	SHA256    string        `json:"sha256"`
}

// EndMsg says every byte was acknowledged; central verifies and answers with a receipt.
type EndMsg struct {
	Transfer  string `json:"transfer"`
	Recording string `json:"recording"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
}

// GrantMsg lets a dock upload. Recordings, when set, are uploaded first in that order;
// otherwise the dock's own priority order applies. A zero Until never expires. A new grant
// replaces the last one at once, mid-recording too: Paused stops sending until a grant that
// is not paused, Revoked withdraws the grant (the dock waits for a new one).
type GrantMsg struct {
	ID         string    `json:"id"`
	Recordings []string  `json:"recordings,omitempty"`
	Max        int       `json:"max,omitempty"` // recordings, 0 = all
	ChunkSize  int       `json:"chunk_size"`
	Window     int       `json:"window"`               // chunks in flight
	RateBytes  int64     `json:"rate_bytes,omitempty"` // per second, 0 = no cap
	Until      time.Time `json:"until,omitzero"`
	Paused     bool      `json:"paused,omitempty"`
	Revoked    bool      `json:"revoked,omitempty"`
	// Seal: a grant is refused unless its Seq is above the last grant's the dock took.
	Seal
}

// Active reports whether g lets the dock send at time now.
func (g GrantMsg) Active(now time.Time) bool {
	return !g.Paused && !g.Revoked && (g.Until.IsZero() || now.Before(g.Until))
}

// Limits on what a grant may ask.
const (
	MinChunk  = 4 << 10
	MaxChunk  = 1 << 20
	MaxWindow = 64
)

// Check rejects a grant the dock cannot honour.
func (g GrantMsg) Check() error {
	switch {
	case g.ID == "":
		return errors.New("grant without id")
	case g.Revoked:
		return nil // a revocation needs no transfer parameters
	case g.ChunkSize < MinChunk || g.ChunkSize > MaxChunk:
		return fmt.Errorf("grant chunk size %d not in %d..%d", g.ChunkSize, MinChunk, MaxChunk)
	case g.Window < 1 || g.Window > MaxWindow:
		return fmt.Errorf("grant window %d not in 1..%d", g.Window, MaxWindow)
	case g.RateBytes < 0 || g.Max < 0:
		return errors.New("grant with negative rate or max")
	}
	return nil
}

// AckMsg is central's acknowledged offset for a recording: every byte before it is stored.
type AckMsg struct {
	Transfer  string `json:"transfer"`
	Recording string `json:"recording"`
	Offset    int64  `json:"offset"`
	Error     string `json:"error,omitempty"`
	// Seal binds the ack to its dock; the signature covers recording, transfer and offset.
	Seal
}

// ReceiptMsg is central's verdict on a complete recording: the hash it computed over the
// bytes it stored. Error is set when it stored nothing.
type ReceiptMsg struct {
	Recording string    `json:"recording"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	Stored    time.Time `json:"stored,omitzero"`
	Error     string    `json:"error,omitempty"`
	// Seal binds the receipt to its dock; the signature covers recording, size and hash.
	Seal
}

// ConfigMsg is central's desired configuration for a dock.
type ConfigMsg struct {
	Version    int64             `json:"version"`
	Team       string            `json:"team"`
	Officers   map[string]string `json:"officers,omitempty"` // device serial -> officer id
	Thresholds json.RawMessage   `json:"thresholds,omitempty"`
	Blocked    []string          `json:"blocked,omitempty"` // device serials
	// DueOut lists devices going out soon: they charge to full, past the long-life ceiling.
	DueOut []string `json:"due_out,omitempty"`
	// AlertEvery is how often an unacknowledged alert is sent again.
	AlertEvery Duration `json:"alert_every,omitempty"`
	// TelemetryEvery is the telemetry period.
	TelemetryEvery Duration `json:"telemetry_every,omitempty"`
	// DeleteAfterReceipt makes the dock keep the camera's copy until central's receipt.
	DeleteAfterReceipt bool `json:"delete_after_receipt,omitempty"`
	// Expires is when the config stops being accepted: a dock refuses one received at
	// or after it (one it already runs stays in force). Required.
	Expires time.Time `json:"expires,omitzero"`
	// Seal binds the config to its dock under central's signature (see Seal). A dock
	// refuses a config that is unsigned, signed by another key or sealed for another dock,
	// whoever delivered it; Version, not Seq, orders configs.
	Seal
}

// ReportedMsg is the dock's answer to a config: applied, or rejected with the reason.
type ReportedMsg struct {
	Version int64     `json:"version"`
	Status  string    `json:"status"` // applied | rejected | rolled-back
	Reason  string    `json:"reason,omitempty"`
	Active  int64     `json:"active_version"`
	Time    time.Time `json:"time"`
}

// CommandMsg is a one-off instruction from central.
type CommandMsg struct {
	Kind      string `json:"kind"` // ack-fault | repair-fault | clear-fault | place-hold | release-hold | sample
	Fault     string `json:"fault,omitempty"`
	Recording string `json:"recording,omitempty"`
	Party     string `json:"party,omitempty"`
	Case      string `json:"case,omitempty"`
	By        string `json:"by,omitempty"`
	// Reason is a place-hold's article 13 reason (dispute, obstruction, ...).
	Reason string `json:"reason,omitempty"`
	// Sample (article 22 spot checks): Count random recordings of Device started on Day
	// (YYYY-MM-DD, UTC) upload before anything else.
	Device string `json:"device,omitempty"`
	Day    string `json:"day,omitempty"`
	Count  int    `json:"count,omitempty"`
	// Seal: a command is refused unless its Seq is above the last command's the dock took
	// (the agent persists it, so a restart does not reopen old commands to replay).
	Seal
}

// LedgerMsg carries a run of ledger entries, in order, as the dock stored them.
type LedgerMsg struct {
	Entries []json.RawMessage `json:"entries"`
}

// LedgerAckMsg is central's answer to a ledger batch: the head of the dock's chain that
// central holds (HeadSeq, HeadHash: the last entry that chained), sealed for the dock. The
// dock keeps the last one as its anchor: a rewrite of its ledger up to it is then caught
// even if the whole chain was recomputed. Error is set when the batch did not chain to
// what central holds (a rewrite, a gap): central keeps its chain and logs a ledger break.
type LedgerAckMsg struct {
	HeadSeq  uint64 `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	Error    string `json:"error,omitempty"`
	// Seal binds the acknowledgement to its dock; the signature covers the head.
	Seal
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// MarshalJSON writes d as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D is the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalJSON reads "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}
