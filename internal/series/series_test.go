package series

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestBucketBounds(t *testing.T) {
	for _, v := range []float64{0, 1e-6, 250e-6, 251e-6, 0.001, 0.0213, 0.5, 1, 30, 1e6} {
		i := bucket(v)
		if v > bounds[i] && i != numBuckets-1 {
			t.Errorf("%g s in bucket %d, whose bound is %g", v, i, bounds[i])
		}
		if i > 0 && v <= bounds[i-1] {
			t.Errorf("%g s in bucket %d, but fits bucket %d (%g)", v, i, i-1, bounds[i-1])
		}
	}
}

func TestPercentilesWithinABucket(t *testing.T) {
	r := New(10*time.Second, 90)
	for i := range 1000 {
		took := 20 * time.Millisecond
		if i%100 == 0 { // 1% slow
			took = 400 * time.Millisecond
		}
		r.For("default/f").Observe(200, took, t0.Add(time.Duration(i)*time.Millisecond))
	}
	s := r.Summary("default/f", 5*time.Minute, t0.Add(time.Second))
	if s.Invocations != 1000 {
		t.Fatalf("invocations %d", s.Invocations)
	}
	within := func(got, want float64) bool { return math.Abs(got-want)/want <= bucketGrowth-1 }
	if !within(s.P50, 0.020) {
		t.Errorf("p50 %g s, want about 20 ms", s.P50)
	}
	if !within(s.P99, 0.020) || s.P99 < s.P50 {
		t.Errorf("p99 %g s with exactly 1%% slow: want the fast bucket, at or above p50", s.P99)
	}
	r.For("default/f").Observe(200, 400*time.Millisecond, t0.Add(time.Second))
	if s := r.Summary("default/f", 5*time.Minute, t0.Add(time.Second)); !within(s.P99, 0.4) {
		t.Errorf("p99 %g s with over 1%% slow: want about 400 ms", s.P99)
	}
}

func TestSeriesSteps(t *testing.T) {
	r := New(10*time.Second, 6) // a minute
	key := "default/f"
	f := r.For(key)
	f.Ready(1, t0)
	f.Observe(200, time.Millisecond, t0)
	f.Observe(404, time.Millisecond, t0.Add(time.Second))
	f.Observe(502, time.Millisecond, t0.Add(12*time.Second))
	f.ColdStart(t0.Add(12 * time.Second))
	f.Ready(3, t0.Add(21*time.Second))
	f.Ready(2, t0.Add(22*time.Second))
	pts := r.Series(key, t0.Add(35*time.Second))
	if len(pts) != 6 {
		t.Fatalf("%d points", len(pts))
	}
	// Steps: t0-20s, t0-10s, t0, t0+10, t0+20, t0+30.
	if !pts[2].T.Equal(t0) || !pts[5].T.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("step times %v … %v", pts[2].T, pts[5].T)
	}
	want := []Point{
		{OK: 0, Ready: 1}, {Ready: 1},
		{OK: 1, ClientErrors: 1, Ready: 1},
		{ServerErrors: 1, ColdStarts: 1, Ready: 1},
		{Ready: 3}, // the most at once in the step
		{Ready: 2}, // the last report carries on
	}
	for i, w := range want {
		p := pts[i]
		if p.OK != w.OK || p.ClientErrors != w.ClientErrors || p.ServerErrors != w.ServerErrors || p.ColdStarts != w.ColdStarts || p.Ready != w.Ready {
			t.Errorf("step %d: %+v, want %+v", i, p, w)
		}
	}
	// A minute on, the old steps are gone, not read as new ones.
	later := r.Series(key, t0.Add(95*time.Second))
	for _, p := range later {
		if p.OK+p.ClientErrors+p.ServerErrors != 0 || p.Ready != 2 {
			t.Errorf("a step of the next minute reads %+v", p)
		}
	}
	if s := r.Summary(key, time.Hour, t0.Add(95*time.Second)); s.Invocations != 0 {
		t.Errorf("a summary past the ring: %+v", s)
	}
	r.Forget(key)
	if p := r.Series(key, t0)[0]; p.Ready != 0 {
		t.Errorf("a forgotten function: %+v", p)
	}
	if s := r.Summary("default/none", time.Minute, t0); s.Invocations != 0 || s.P99 != 0 {
		t.Errorf("an unknown function: %+v", s)
	}
}
