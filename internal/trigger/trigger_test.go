package trigger

import (
	"strings"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	every, _ := Parse("* * * * *") // each minute
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		last, now time.Time
		at        time.Time
		fire      bool
		skipped   int
		next      time.Time
	}{
		{"nothing due yet", base, base.Add(30 * time.Second), time.Time{}, false, 0, base.Add(time.Minute)},
		{"one due", base, base.Add(61 * time.Second), base.Add(time.Minute), true, 0, base.Add(2 * time.Minute)},
		{"exactly on time", base, base.Add(time.Minute), base.Add(time.Minute), true, 0, base.Add(2 * time.Minute)},
		{"after downtime: the latest only", base, base.Add(5*time.Minute + time.Second), base.Add(5 * time.Minute), true, 4, base.Add(6 * time.Minute)},
	}
	for _, c := range cases {
		at, fire, skipped, next := Due(every, c.last, c.now, time.Hour)
		if fire != c.fire || skipped != c.skipped || !next.Equal(c.next) || (c.at.IsZero() != at.IsZero()) || (!c.at.IsZero() && !at.Equal(c.at)) {
			t.Errorf("%s: got at=%v fire=%v skipped=%d next=%v", c.name, at, fire, skipped, next)
		}
	}
	// Daily at noon, found 2h late with a grace of 1h: skipped, and handled.
	daily, _ := Parse("0 12 * * *")
	at, fire, skipped, next := Due(daily, base, base.Add(26*time.Hour), time.Hour)
	if fire || skipped != 1 || !at.Equal(base.Add(24*time.Hour)) || !next.Equal(base.Add(48*time.Hour)) {
		t.Errorf("beyond grace: got at=%v fire=%v skipped=%d next=%v", at, fire, skipped, next)
	}
	// A dense schedule after a long downtime stays bounded.
	dense, _ := Parse("@every 1s")
	_, fire, _, next = Due(dense, base, base.Add(30*24*time.Hour), time.Hour)
	if !fire || next.Before(base.Add(30*24*time.Hour)) {
		t.Errorf("dense schedule: fire=%v next=%v", fire, next)
	}
}

func TestValidate(t *testing.T) {
	ok := Trigger{Name: "nightly", Namespace: "default", Schedule: "0 3 * * *", Function: "report"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for field, tr := range map[string]Trigger{
		"name":     {Name: "Bad_Name", Namespace: "default", Schedule: "@hourly", Function: "f"},
		"schedule": {Name: "t", Namespace: "default", Schedule: "every tuesday", Function: "f"},
		"function": {Name: "t", Namespace: "default", Schedule: "@hourly", Function: ""},
		"path":     {Name: "t", Namespace: "default", Schedule: "@hourly", Function: "f", Path: "x"},
		"body":     {Name: "t", Namespace: "default", Schedule: "@hourly", Function: "f", Body: strings.Repeat("x", MaxBody+1)},
	} {
		err := tr.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), field+":") {
			t.Errorf("%s: want an error naming the field, got %v", field, err)
		}
	}
	a, b, later := CallID("default", "a", time.Unix(60, 0)), CallID("default", "b", time.Unix(60, 0)), CallID("default", "a", time.Unix(120, 0))
	if a == b || a == later || a != "cron-"+a[5:21]+"-60" {
		t.Errorf("call ids must be per trigger and time, and stable: %s %s %s", a, b, later)
	}
}
