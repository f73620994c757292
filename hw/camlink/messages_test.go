package camlink

import (
	"testing"
)

func TestDecodeChecksValues(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		into    any
		ok      bool
	}{
		{"battery ok", `{"charge_pct":50,"design_mah":3000,"full_mah":2900,"temp_dc":250}`, &Battery{}, true},
		{"battery over 100", `{"charge_pct":150,"design_mah":3000}`, &Battery{}, false},
		{"battery no design capacity", `{"charge_pct":50}`, &Battery{}, false},
		{"battery absurd temp", `{"charge_pct":50,"design_mah":3000,"temp_dc":9000}`, &Battery{}, false},
		{"storage free over capacity", `{"capacity":10,"free":11}`, &Storage{}, false},
		{"storage ok", `{"capacity":10,"free":5}`, &Storage{}, true},
		{"list negative total", `{"total":-1}`, &listReply{}, false},
		{"list total not a number", `{"total":"many"}`, &listReply{}, false},
		{"list entries not a list", `{"total":1,"recordings":{"name":"a"}}`, &listReply{}, false},
		{"list with a bad entry", `{"total":1,"recordings":[{"name":"../x","size":-1}]}`, &listReply{}, true}, // refused alone, by the lister
		{"identity bad serial", `{"serial":"a/b"}`, &Identity{}, false},
		{"identity ok", `{"serial":"CAM-0001"}`, &Identity{}, true},
		{"not json", `{"serial":`, &Identity{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Decode([]byte(tc.payload), tc.into)
			if (err == nil) != tc.ok {
				t.Fatalf("Decode(%s) err = %v, want ok=%v", tc.payload, err, tc.ok)
			}
		})
	}
}

func TestCheckEntry(t *testing.T) {
	tests := []struct {
		name string
		e    FileEntry
		ok   bool
	}{
		{"plain", FileEntry{Name: "a.mp4", Size: 1, Mark: "dispute"}, true},
		{"nested", FileEntry{Name: "DCIM/100MEDIA/VID_0002.MP4", Size: 5 << 30}, true},
		{"empty file", FileEntry{Name: "a.mp4"}, true},
		{"largest", FileEntry{Name: "a.mp4", Size: 100}, true},
		{"negative size", FileEntry{Name: "a.mp4", Size: -1}, false},
		{"absurd size", FileEntry{Name: "a.mp4", Size: 101}, false},
		{"path escape", FileEntry{Name: "../etc/passwd", Size: 1}, false},
		{"unknown mark", FileEntry{Name: "a.mp4", Size: 1, Mark: "lol"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e
			if tc.name == "nested" {
				e.Size = 100
			}
			if err := CheckEntry(e, 100); (err == nil) != tc.ok {
				t.Fatalf("CheckEntry(%+v) = %v, want ok=%v", e, err, tc.ok)
			}
		})
	}
}

func FuzzDecodeReplies(f *testing.F) {
	f.Add(`{"charge_pct":50,"design_mah":3000}`)
	f.Add(`{"total":1,"recordings":[{"name":"a.mp4","size":1}]}`)
	f.Add(`{"serial":"CAM"}`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{&Identity{}, &Battery{}, &Storage{}, &listReply{}, &SetClockReply{}} {
			if err := Decode([]byte(s), v); err != nil {
				continue
			}
			// What passes must be sane.
			switch x := v.(type) {
			case *Battery:
				if x.ChargePct < 0 || x.ChargePct > 100 || x.DesignMAh <= 0 {
					t.Fatalf("accepted %+v", x)
				}
			case *listReply:
				if x.Total < 0 {
					t.Fatalf("accepted %+v", x)
				}
			}
		}
	})
}
