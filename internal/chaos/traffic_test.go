package chaos

import (
	"testing"
	"time"
)

func TestTwoWritable(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []Sample{
		{Site: "a", Start: at(0), End: at(10), Writable: true},
		{Site: "a", Start: at(50), End: at(60), Writable: true},
		{Site: "b", Start: at(55), End: at(70), Writable: false}, // b refused: no overlap
		{Site: "b", Start: at(100), End: at(110), Writable: true},
		{Site: "a", Start: at(105), End: at(400), Writable: true}, // a hung writable across b's write
		{Site: "b", Start: at(500), End: at(510), Writable: true},
	}
	pairs := TwoWritable(samples)
	if len(pairs) != 1 || pairs[0][0].Start != at(100) || pairs[0][1].Start != at(105) {
		t.Fatalf("got %v, want the one overlap of b at 100ms and a at 105ms", pairs)
	}
	if got := TwoWritable(samples[:4]); len(got) != 0 {
		t.Fatalf("got %v, want none", got)
	}
}

func TestLostAndGaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	acks := []Ack{{1, t0, "a"}, {2, t0.Add(time.Second), "a"}, {3, t0.Add(3 * time.Second), "b"}, {4, t0.Add(3100 * time.Millisecond), "b"}}
	lost := Lost(acks, map[int64]bool{1: true, 3: true, 4: true})
	if len(lost) != 1 || lost[0].ID != 2 {
		t.Fatalf("lost %v, want [2]", lost)
	}
	if g := LongestGap(acks, t0); g != 2*time.Second {
		t.Errorf("longest gap %s, want 2s", g)
	}
	if a, ok := FirstAckAfter(acks, t0.Add(500*time.Millisecond), "a"); !ok || a.ID != 3 {
		t.Errorf("first ack after by another server: %v %v", a, ok)
	}
	if a, ok := LastAckBy(acks, "a"); !ok || a.ID != 2 {
		t.Errorf("last ack by a: %v %v", a, ok)
	}
}
