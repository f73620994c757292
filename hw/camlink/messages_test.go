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
		{"list negative size", `{"total":1,"recordings":[{"name":"a.mp4","size":-1}]}`, &ListPage{}, false},
		{"list path escape", `{"total":1,"recordings":[{"name":"../etc/passwd","size":1}]}`, &ListPage{}, false},
		{"list unknown mark", `{"total":1,"recordings":[{"name":"a.mp4","size":1,"mark":"lol"}]}`, &ListPage{}, false},
		{"list more than total", `{"total":0,"recordings":[{"name":"a.mp4","size":1}]}`, &ListPage{}, false},
		{"list ok", `{"total":1,"recordings":[{"name":"a.mp4","size":1,"mark":"dispute"}]}`, &ListPage{}, true},
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

func FuzzDecodeReplies(f *testing.F) {
	f.Add(`{"charge_pct":50,"design_mah":3000}`)
	f.Add(`{"total":1,"recordings":[{"name":"a.mp4","size":1}]}`)
	f.Add(`{"serial":"CAM"}`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{&Identity{}, &Battery{}, &Storage{}, &ListPage{}, &SetClockReply{}} {
			if err := Decode([]byte(s), v); err != nil {
				continue
			}
			// What passes must be sane.
			switch x := v.(type) {
			case *Battery:
				if x.ChargePct < 0 || x.ChargePct > 100 || x.DesignMAh <= 0 {
					t.Fatalf("accepted %+v", x)
				}
			case *ListPage:
				for _, e := range x.Recordings {
					if e.Size < 0 || !validFileName(e.Name) {
						t.Fatalf("accepted %+v", e)
					}
				}
			}
		}
	})
}
