package central

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dock/uplink/wire"
)

const zeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// chainEntries makes n ledger entries from seq from on, chained to prev, as a dock stores
// them: the hash is SHA-256 over prev and the entry's JSON with "hash" empty.
func chainEntries(from uint64, n int, prev, detail string) (out []json.RawMessage, last string) {
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"seq":%d,"time":"2026-11-30T08:00:00Z","kind":"footage-access","detail":%q,"prev":%q,"hash":""}`, from+uint64(i), detail, prev)
		h := sha256.Sum256(append([]byte(prev), body...))
		hash := hex.EncodeToString(h[:])
		out = append(out, json.RawMessage(strings.TrimSuffix(body, `""}`)+`"`+hash+`"}`))
		prev = hash
	}
	return out, prev
}

// Central checks each batch against the chain it holds for the dock and acknowledges the
// head; a rewrite or a gap is refused with an error, logged as a ledger break, and central
// keeps its chain, also across a restart (the head is a file in its store).
func TestCentralAnchorsTheDocksLedger(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	r := newReceiver(Options{ManualGrants: true, Store: FileStore{Dir: dir}}, slog.New(slog.NewTextHandler(&logs, nil)))
	first, h10 := chainEntries(1, 10, zeroHash, "read")
	ack := acked(r.checkLedger("dock-1", first))
	if ack.Error != "" || ack.HeadSeq != 10 || ack.HeadHash != h10 {
		t.Fatalf("first batch: %+v", ack)
	}
	second, h20 := chainEntries(11, 10, h10, "read")
	if ack = acked(r.checkLedger("dock-1", second)); ack.Error != "" || ack.HeadSeq != 20 || ack.HeadHash != h20 {
		t.Fatalf("second batch: %+v", ack)
	}
	// A repeat (QoS 1 redelivery) changes nothing.
	if ack = acked(r.checkLedger("dock-1", second)); ack.Error != "" || ack.HeadSeq != 20 {
		t.Fatalf("repeated batch: %+v", ack)
	}
	// Restarted: the head is read from the store.
	r = newReceiver(Options{ManualGrants: true, Store: FileStore{Dir: dir}}, slog.New(slog.NewTextHandler(&logs, nil)))
	// The dock's disk rewritten from entry 1 on and rechained: entries 21.. chain to a
	// head central never saw.
	forged, _ := chainEntries(1, 20, zeroHash, "never read")
	_, fh := chainEntries(1, 20, zeroHash, "never read")
	more, _ := chainEntries(21, 5, fh, "read")
	for name, batch := range map[string][]json.RawMessage{"rewritten history": forged, "rechained continuation": more} {
		logs.Reset()
		ack = acked(r.checkLedger("dock-1", batch))
		if ack.Error == "" || ack.HeadSeq != 20 || ack.HeadHash != h20 {
			t.Fatalf("%s: acknowledged %+v, want an error and central's head 20 kept", name, ack)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "ledger break") || !strings.Contains(logs.String(), "dock-1") {
			t.Fatalf("%s: not logged as a ledger break at Error: %s", name, logs.String())
		}
	}
	// Each break point is one central alert (the dock exports the same batch again).
	breaks := 0
	for _, a := range r.Alerts() {
		if a.Code == AlertLedgerBreak && strings.Contains(a.Detail, "entry 20") {
			breaks++
		}
	}
	if breaks != 1 {
		t.Fatalf("%d ledger-break alerts at entry 20, want 1: %v", breaks, r.Alerts())
	}
	// A gap.
	gap, _ := chainEntries(22, 3, h20, "read")
	if ack = acked(r.checkLedger("dock-1", gap)); ack.Error == "" || !strings.Contains(ack.Error, "21") || ack.HeadSeq != 20 {
		t.Fatalf("gap: %+v", ack)
	}
	// Content changed without rehashing.
	bad, _ := chainEntries(21, 1, h20, "read")
	bad[0] = json.RawMessage(strings.Replace(string(bad[0]), `"read"`, `"rea!"`, 1))
	if ack = acked(r.checkLedger("dock-1", bad)); ack.Error == "" || ack.HeadSeq != 20 {
		t.Fatalf("tampered content: %+v", ack)
	}
	// The chain goes on from central's head.
	good, h25 := chainEntries(21, 5, h20, "read")
	if ack = acked(r.checkLedger("dock-1", good)); ack.Error != "" || ack.HeadSeq != 25 || ack.HeadHash != h25 {
		t.Fatalf("continuation: %+v", ack)
	}
	// Another dock's chain is its own; the head file is written whole under the store.
	if ack = acked(r.checkLedger("dock-2", more)); ack.Error != "" || ack.HeadSeq != 25 {
		t.Fatalf("a dock first seen mid-ledger starts its chain there: %+v", ack)
	}
	b, err := os.ReadFile(filepath.Join(dir, "ledger", "dock-1.head"))
	if err != nil || !strings.Contains(string(b), h25) {
		t.Fatalf("head file: %s %v", b, err)
	}
	if es, _ := os.ReadDir(filepath.Join(dir, "ledger")); len(es) != 2 {
		t.Fatalf("ledger dir holds %d files, want the two heads and no temporary", len(es))
	}
}

func acked(ack wire.LedgerAckMsg, ok bool) wire.LedgerAckMsg {
	if !ok {
		panic("no acknowledgement: the store keeps no ledger heads")
	}
	return ack
}
