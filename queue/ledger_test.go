package queue

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The stored line is built by filling the hash into the JSON that was hashed; it must be
// exactly what encoding/json makes of the sealed entry, or central's copy and a verifier
// reading the line would disagree with the dock.
func TestSealedLineIsTheEntrysJSON(t *testing.T) {
	for _, ev := range []Event{
		{Kind: EvAccess, Recording: "cam1-0001", Detail: "read for upload, transfer t1"},
		{Kind: EvFault, Slot: 3, Device: "cam\"7\"", Detail: "<battery> & \\ swollen\n\u2028"},
		{Kind: EvConfig},
		{Kind: "", Detail: "h\u00e9llo \x00 \ufffd"},
	} {
		e := Entry{Seq: 42, Time: time.Date(2026, 11, 27, 15, 0, 0, 123, time.UTC), Event: ev, Prev: genesis}
		hash, line, err := e.sealed()
		if err != nil {
			t.Fatal(err)
		}
		e.Hash = hash
		want, _ := json.Marshal(e)
		if !bytes.Equal(line, want) {
			t.Errorf("%+v:\n got %s\nwant %s", ev, line, want)
		}
		var back Entry
		if err := json.Unmarshal(line, &back); err != nil {
			t.Fatal(err)
		}
		if err := checkEntry(back, genesis, 42); err != nil {
			t.Errorf("%+v: the stored line does not verify: %v", ev, err)
		}
	}
}
