package wire

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Sign seals the config for its dock (see Sign).
func (c *ConfigMsg) Sign(key ed25519.PrivateKey) { Sign(c, key) }

// Verify checks the config's signature against central's public key (see Verify).
func (c ConfigMsg) Verify(key ed25519.PublicKey) error { return Verify(&c, key) }

// Seal is what binds every central-to-dock message (grant, ack, receipt, config, command)
// to central and to one dock, whatever the broker lets through (DESIGN.md, invariant 8):
// central signs the message with its Ed25519 key (the one whose public half is the
// dock's central_key) over SigningBytes, which covers every field but Sig (Dock and Seq
// included). The dock refuses a message whose signature fails or whose Dock is not its
// own; the message's own fields bind the rest (the recording, transfer, offset, size and
// hash of an ack or receipt; a command's recording or fault and who ordered it).
//
// Seq is central's sequence for the dock (unix nanoseconds at central, made to increase
// per dock): a dock takes a grant or a command only if its Seq is above the last one of
// its kind it took, so one captured and published again is refused. Acks and receipts
// need no such guard: a replayed one states again what central stored for this dock's
// recording, and applying it twice changes nothing (the dock frees only what it uploaded
// whole, on a receipt naming its own hash and size).
type Seal struct {
	Dock string `json:"dock,omitempty"`
	Seq  uint64 `json:"seq,omitempty"`
	Sig  string `json:"sig,omitempty"` // base64 Ed25519 signature over SigningBytes
}

func (s *Seal) seal() *Seal { return s }

// Sealed is a central-to-dock message: a pointer to one of GrantMsg, AckMsg, ReceiptMsg,
// ConfigMsg, CommandMsg, LedgerAckMsg.
type Sealed interface {
	seal() *Seal
	leaf() string
}

func (*GrantMsg) leaf() string { return TopicGrant }

func (*AckMsg) leaf() string { return TopicAck }

func (*ReceiptMsg) leaf() string { return TopicReceipt }

func (*ConfigMsg) leaf() string { return TopicConfig }

func (*CommandMsg) leaf() string { return TopicCommand }

func (*LedgerAckMsg) leaf() string { return TopicLedgerAck }

// SigningBytes is what central signs: a domain tag naming the message's kind (so that one
// kind cannot pass for another), then the message's JSON encoding with Sig empty. Go's
// encoding is canonical for these types (fields in declaration order, map keys sorted),
// so the dock recomputes it from what it decoded; fields it does not know are not covered
// and not used.
func SigningBytes(m Sealed) []byte {
	s := m.seal()
	sig := s.Sig
	s.Sig = ""
	b, _ := json.Marshal(m)
	s.Sig = sig
	return append([]byte("dock-central-v1 "+m.leaf()+"\n"), b...)
}

// Sign sets m's signature with central's key; Dock and Seq must be set before.
func Sign(m Sealed, key ed25519.PrivateKey) {
	m.seal().Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, SigningBytes(m)))
}

// SealFor seals m for dock: sets Dock and Seq and signs it with central's key.
func SealFor(m Sealed, dock string, seq uint64, key ed25519.PrivateKey) {
	s := m.seal()
	s.Dock, s.Seq = dock, seq
	Sign(m, key)
}

// ErrBadSignature means a message from central is unsigned or not signed by central's key.
var ErrBadSignature = errors.New("signature invalid")

// ErrOtherDock means a message is sealed for another dock than the one it reached.
var ErrOtherDock = errors.New("sealed for another dock")

// Verify checks m's signature against central's public key.
func Verify(m Sealed, key ed25519.PublicKey) error {
	s := m.seal()
	if s.Sig == "" {
		return fmt.Errorf("%w: unsigned", ErrBadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Sig)
	if err != nil || len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, SigningBytes(m), sig) {
		return fmt.Errorf("%w: not signed by central's key", ErrBadSignature)
	}
	return nil
}

// Open verifies m (see Verify) and that it is sealed for dock.
func Open(m Sealed, key ed25519.PublicKey, dock string) error {
	if err := Verify(m, key); err != nil {
		return err
	}
	if d := m.seal().Dock; d != dock {
		return fmt.Errorf("%w: %q, not %q", ErrOtherDock, d, dock)
	}
	return nil
}
