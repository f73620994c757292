package board

import "testing"

func TestKnownBoardsAreConsistent(t *testing.T) {
	if len(Names()) == 0 {
		t.Fatal("no real board registered")
	}
	for _, n := range Names() {
		b, err := Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Check(); err != nil {
			t.Error(err)
		}
	}
}

func TestCheckFindsSharedPin(t *testing.T) {
	b := Board{Name: "x", Slots: []Slot{
		{Presence: "A", Charge: "B", Fault: "C", Serial: "/dev/a", Mount: "/m/a"},
		{Presence: "A", Charge: "D", Fault: "E", Serial: "/dev/b", Mount: "/m/b"},
	}}
	if err := b.Check(); err == nil {
		t.Fatal("a pin shared by two slots passed Check")
	}
	if _, err := Lookup("no-such-board"); err == nil {
		t.Fatal("unknown board found")
	}
}
