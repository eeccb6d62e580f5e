package autoscaler

import (
	"math"
	"nimbus/internal/function"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sim runs the decider against a simulated function on a simulated clock,
// one decision a second as the scaler makes them: load(t) is the metric's
// value in second t (t from 0), replicas become ready startDelay seconds
// after they are asked for (never, if startDelay < 0) and go at once.
type sim struct {
	spec       Spec
	load       func(t int) float64
	startDelay int
}

type step struct {
	t       int
	load    float64
	ready   int
	desired int
	panic   bool
	reason  string
}

var t0 = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

func (s sim) run(seconds int) []step {
	w := NewWindow(s.spec.StableWindow)
	var st State
	var out []step
	ready := 0
	var asked []int // desired at each second
	for t := range seconds {
		now := t0.Add(time.Duration(t) * time.Second)
		w.Add(now, s.load(t))
		// What was asked startDelay seconds ago is ready now, capped by
		// what is asked now (surplus stops at once).
		switch {
		case s.startDelay < 0:
			ready = 0
		case t >= s.startDelay:
			ready = min(asked[t-s.startDelay], st.Desired)
		default:
			ready = 0
		}
		end := now.Add(time.Second) // the second just filled is complete
		stable, _ := w.Average(end, s.spec.StableWindow)
		pan, _ := w.Average(end, s.spec.PanicWindow)
		cur, _ := w.Average(end, time.Second)
		d, next := Decide(s.spec, Stats{Stable: stable, Panic: pan, Current: cur, Ready: ready}, st, end)
		st = next
		asked = append(asked, d.Desired)
		out = append(out, step{t: t, load: s.load(t), ready: ready, desired: d.Desired, panic: d.Panic, reason: d.Reason})
	}
	return out
}

func spec10() Spec {
	return Spec{Min: 0, Max: 100, Metric: "concurrency", Target: 10, StableWindow: 60 * time.Second,
		PanicWindow: 6 * time.Second, PanicThreshold: 2, ZeroGrace: 30 * time.Second}
}

func need(load float64) int { return int(math.Ceil(load / 10)) }

func changes(steps []step) int {
	n := 0
	for i := 1; i < len(steps); i++ {
		if steps[i].desired != steps[i-1].desired {
			n++
		}
	}
	return n
}

func logSteps(t *testing.T, steps []step) {
	t.Helper()
	var b strings.Builder
	for _, s := range steps {
		b.WriteString("\n")
		b.WriteString(time.Duration(s.t * int(time.Second)).String())
		b.WriteString(" load ")
		b.WriteString(strings.TrimRight(strings.TrimRight(strconvF(s.load), "0"), "."))
		b.WriteString(" ready ")
		b.WriteString(itoa(s.ready))
		b.WriteString(" desired ")
		b.WriteString(itoa(s.desired))
		if s.panic {
			b.WriteString(" PANIC")
		}
	}
	t.Log(b.String())
}

func TestStepLoad(t *testing.T) {
	steps := sim{spec: spec10(), startDelay: 1, load: func(t int) float64 {
		if t < 10 {
			return 5
		}
		return 50
	}}.run(200)
	if got := steps[9].desired; got != 1 {
		t.Errorf("before the step: desired %d, want 1", got)
	}
	// The panic window (6 s) follows the step: 5 replicas once it is filled.
	reached := -1
	for _, s := range steps[10:] {
		if s.desired >= 5 {
			reached = s.t
			break
		}
	}
	if reached < 0 || reached > 15 {
		logSteps(t, steps[:30])
		t.Fatalf("5 replicas reached at %ds, want by 15s", reached)
	}
	for _, s := range steps[10:] {
		if s.desired > 5 {
			t.Fatalf("at %ds desired %d: overshoots the 5 the load needs", s.t, s.desired)
		}
	}
	if got := steps[len(steps)-1]; got.desired != 5 || got.panic {
		t.Errorf("settled at %d (panic %v), want 5 out of panic", got.desired, got.panic)
	}
}

func TestRamp(t *testing.T) {
	// 0 to 200 in flight over 200 s, then flat.
	load := func(t int) float64 { return float64(min(t, 200)) }
	steps := sim{spec: spec10(), startDelay: 1, load: load}.run(300)
	for _, s := range steps[10:] {
		lag := need(load(max(s.t-10, 0)))
		if s.desired < lag {
			logSteps(t, steps[:s.t+1])
			t.Fatalf("at %ds desired %d: behind what the load needed 10 s earlier (%d)", s.t, s.desired, lag)
		}
		if s.desired > need(load(s.t))+2 {
			t.Fatalf("at %ds desired %d: over the %d the load needs now by more than 2", s.t, s.desired, need(load(s.t)))
		}
	}
	if got := steps[len(steps)-1].desired; got != 20 {
		t.Errorf("settled at %d, want 20", got)
	}
}

func TestBurstPanics(t *testing.T) {
	steps := sim{spec: spec10(), startDelay: 1, load: func(t int) float64 {
		if t >= 60 && t < 70 {
			return 100
		}
		return 10
	}}.run(300)
	if steps[59].desired != 1 || steps[59].panic {
		t.Fatalf("before the burst: %+v", steps[59])
	}
	// Panic within two decisions, and 10 replicas (the burst's need) once
	// the burst fills the 6 s panic window.
	if !steps[61].panic {
		logSteps(t, steps[55:75])
		t.Fatalf("no panic 2 s into a burst of 10x")
	}
	if steps[65].desired < 10 {
		logSteps(t, steps[55:75])
		t.Fatalf("6 s into the burst: desired %d, want 10", steps[65].desired)
	}
	if !strings.Contains(steps[62].reason, "panic") {
		t.Errorf("reason %q does not say panic", steps[62].reason)
	}
	// No scale-down while panicking: from the burst until a stable window
	// after the last second over the threshold.
	lastOver := 0
	for _, s := range steps[60:] {
		if s.panic {
			lastOver = s.t
		}
	}
	for _, s := range steps[65:lastOver] {
		if s.desired < 10 {
			t.Fatalf("at %ds (in panic) desired fell to %d", s.t, s.desired)
		}
	}
	if lastOver < 60+60 {
		t.Errorf("panic ended at %ds, before a stable window (60 s) without the burst", lastOver)
	}
	// Afterwards back to 1, never dropping more than half a step.
	for i := lastOver; i < len(steps); i++ {
		if steps[i].desired < steps[i-1].desired/2 {
			t.Fatalf("at %ds desired %d after %d: more than halved in one step", i, steps[i].desired, steps[i-1].desired)
		}
	}
	if got := steps[len(steps)-1].desired; got != 2 && got != 1 {
		logSteps(t, steps[120:])
		t.Errorf("settled at %d, want back near 1", got)
	}
}

func TestSlowDecay(t *testing.T) {
	// 100 in flight decaying to 10 over five minutes: only ever down.
	load := func(t int) float64 { return 10 + 90*math.Exp(-float64(t)/60) }
	spec := spec10()
	steps := sim{spec: spec, startDelay: 1, load: load}.run(600)
	for i := 70; i < len(steps); i++ {
		if steps[i].desired > steps[i-1].desired {
			logSteps(t, steps[60:i+1])
			t.Fatalf("at %ds desired rose %d → %d while load only fell", i, steps[i-1].desired, steps[i].desired)
		}
	}
	if got := steps[len(steps)-1].desired; got != 1 && got != 2 {
		t.Errorf("settled at %d, want 1 or 2", got)
	}
}

func TestIdleToZero(t *testing.T) {
	steps := sim{spec: spec10(), startDelay: 1, load: func(t int) float64 {
		if t < 20 {
			return 5
		}
		return 0
	}}.run(120)
	// The last load is in second 19; the decision at the end of second s
	// sees it as s-19 seconds old.
	zeroAt := -1
	for _, s := range steps {
		if s.t >= 20 && s.desired == 0 {
			zeroAt = s.t
			break
		}
	}
	if zeroAt < 0 {
		t.Fatalf("never scaled to zero")
	}
	if idle := zeroAt - 19; idle < 30 || idle > 31 {
		logSteps(t, steps[15:60])
		t.Fatalf("scaled to zero after %ds idle, want the 30 s grace", idle)
	}
	for _, s := range steps[20:zeroAt] {
		if s.desired != 1 {
			t.Fatalf("at %ds desired %d before the grace ran out", s.t, s.desired)
		}
	}
	for _, s := range steps[zeroAt:] {
		if s.desired != 0 {
			t.Fatalf("at %ds desired %d after scaling to zero with no load", s.t, s.desired)
		}
	}
}

func TestFlappingLoad(t *testing.T) {
	// Load alternating between 0 and 60 every 3 s averages 30: the decider
	// settles on a count and keeps it, with no oscillation.
	steps := sim{spec: spec10(), startDelay: 1, load: func(t int) float64 {
		if (t/3)%2 == 0 {
			return 60
		}
		return 0
	}}.run(400)
	settled := steps[150:]
	if n := changes(settled); n > 0 {
		logSteps(t, settled[:40])
		t.Fatalf("%d changes of desired replicas in 250 s of the same flapping load", n)
	}
	if got := settled[0].desired; got < 3 || got > 6 {
		t.Errorf("settled at %d, want between 3 (the mean's need) and 6 (the peak's)", got)
	}
}

func TestMinMaxBounds(t *testing.T) {
	spec := spec10()
	spec.Min, spec.Max = 2, 3
	steps := sim{spec: spec, startDelay: 1, load: func(t int) float64 {
		if t < 100 {
			return 500
		}
		return 0
	}}.run(300)
	for _, s := range steps {
		if s.desired < 2 || s.desired > 3 {
			t.Fatalf("at %ds desired %d, outside min 2 and max 3", s.t, s.desired)
		}
	}
	if !strings.Contains(steps[50].reason, "max 3") {
		t.Errorf("reason %q does not name the max", steps[50].reason)
	}
	if got := steps[len(steps)-1]; got.desired != 2 || !strings.Contains(got.reason, "min 2") {
		t.Errorf("idle: %+v, want min 2 named", got)
	}
}

func TestProviderFailsToStart(t *testing.T) {
	// Nothing ever becomes ready: the decider asks for what the load needs
	// and holds it; it does not climb because nothing is ready.
	steps := sim{spec: spec10(), startDelay: -1, load: func(int) float64 { return 30 }}.run(300)
	for _, s := range steps[10:] {
		if s.desired < 3 || s.desired > 3 {
			logSteps(t, steps[:20])
			t.Fatalf("at %ds desired %d with no replica ready, want the 3 the load needs", s.t, s.desired)
		}
	}
}

func TestScaleDownDelay(t *testing.T) {
	spec := spec10()
	spec.ScaleDownDelay = 30 * time.Second
	spec.StableWindow, spec.PanicWindow = 6*time.Second, time.Second
	steps := sim{spec: spec, startDelay: 1, load: func(t int) float64 {
		if t < 20 {
			return 40
		}
		return 10
	}}.run(100)
	for _, s := range steps[20:50] {
		if s.desired < 4 {
			t.Fatalf("at %ds desired %d inside the 30 s scale-down delay", s.t, s.desired)
		}
	}
	// Each step down is itself held for the delay.
	if got := steps[99].desired; got != 1 {
		logSteps(t, steps[40:100])
		t.Errorf("after the delay: desired %d, want 1", got)
	}
}

func TestActivate(t *testing.T) {
	spec := spec10()
	d, st := Activate(spec, State{}, 1, t0)
	if d.Desired != 1 || st.Desired != 1 || !st.LastActive.Equal(t0) {
		t.Fatalf("cold request: %+v %+v", d, st)
	}
	// Ten concurrent cold requests still ask for one replica (target 10).
	d, _ = Activate(spec, State{}, 10, t0)
	if d.Desired != 1 {
		t.Errorf("10 cold requests at target 10: desired %d, want 1", d.Desired)
	}
	d, _ = Activate(spec, State{}, 25, t0)
	if d.Desired != 3 {
		t.Errorf("25 cold requests at target 10: desired %d, want 3", d.Desired)
	}
	// Never below what is already asked, never above max.
	d, _ = Activate(spec, State{Desired: 7}, 1, t0)
	if d.Desired != 7 {
		t.Errorf("activation lowered desired 7 to %d", d.Desired)
	}
	spec.Max = 2
	if d, _ = Activate(spec, State{}, 100, t0); d.Desired != 2 {
		t.Errorf("activation past max: %d", d.Desired)
	}
	// A replica takes one request at once and aims at 0.7 of it: one cold
	// request starts one replica, two start two.
	one := SpecFor(function.Scale{Min: 0, Max: 10, MaxConcurrency: 1, TargetUtilization: 0.7, Type: function.ScaleConcurrency})
	if d, _ = Activate(one, State{}, 1, t0); d.Desired != 1 {
		t.Errorf("one cold request at maxConcurrency 1: desired %d, want 1", d.Desired)
	}
	if d, _ = Activate(one, State{}, 2, t0); d.Desired != 2 {
		t.Errorf("two cold requests at maxConcurrency 1: desired %d, want 2", d.Desired)
	}
	// Right after an activation, with the window still empty, the decider
	// keeps the replica (the grace counts from the activation).
	spec = spec10()
	_, st = Activate(spec, State{}, 1, t0)
	d, _ = Decide(spec, Stats{}, st, t0.Add(time.Second))
	if d.Desired != 1 {
		t.Errorf("decision a second after activation: %+v", d)
	}
}

func TestWindowAverage(t *testing.T) {
	w := NewWindow(10 * time.Second)
	if _, ok := w.Average(t0, 10*time.Second); ok {
		t.Fatal("an empty window has an average")
	}
	for i := range 5 {
		w.Add(t0.Add(time.Duration(i)*time.Second), 10)
	}
	w.Add(t0.Add(4*time.Second), 10) // two gateways in one second add up
	// At the end of second 4: 5 seconds of data, 60 in all.
	if avg, _ := w.Average(t0.Add(5*time.Second), 10*time.Second); avg != 12 {
		t.Errorf("young window: average %v, want 12 (over its own 5 s)", avg)
	}
	if avg, _ := w.Average(t0.Add(5*time.Second), 2*time.Second); avg != 15 {
		t.Errorf("last 2 s: average %v, want 15", avg)
	}
	// 30 s later the old buckets are out of the 10 s span: zero load.
	if avg, ok := w.Average(t0.Add(35*time.Second), 10*time.Second); !ok || avg != 0 {
		t.Errorf("stale window: %v %v, want 0", avg, ok)
	}
	// A bucket reused for a later second starts again from zero.
	w.Add(t0.Add(14*time.Second), 3)
	if avg, _ := w.Average(t0.Add(15*time.Second), time.Second); avg != 3 {
		t.Errorf("reused bucket: %v, want 3", avg)
	}
}

func strconvF(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func itoa(v int) string         { return strconv.Itoa(v) }

func TestBurst(t *testing.T) {
	spec := spec10()
	spec.Max = 20
	for _, c := range []struct{ decided, want, keep int }{
		{0, 1, 1}, // nothing decided yet: one
		{1, 2, 2}, // one more
		{1, 5, 2}, // at most one more than one
		{4, 5, 5}, // one more than 4
		{4, 9, 5}, // a quarter again 4, at least one
		{10, 12, 12},
		{10, 15, 13}, // a quarter again 10
		{18, 30, 20}, // max
	} {
		if got := Burst(spec, c.decided, c.want); got != c.keep {
			t.Errorf("Burst(decided %d, want %d) = %d, want %d", c.decided, c.want, got, c.keep)
		}
	}
}
