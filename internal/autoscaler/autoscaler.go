// Package autoscaler decides how many replicas a function needs. The
// decision is a pure function, Decide, of the function's scale settings,
// the load averaged over two windows and the time, after Knative's KPA:
//
//   - the stable window (60 s by default) and the panic window (a tenth of
//     it, at least 2 s) each give a replica count, ceil(load / target per replica); the
//     higher one is taken, so that a rising load is followed on the quick
//     window and a falling one on the slow window (Knative takes the
//     stable count outside panic, which lags a ramp and, once a panic
//     ends, scales down under a load that is still rising);
//   - when the panic window asks for PanicThreshold times the ready
//     replicas, the decider panics: it follows the panic window and never
//     scales down, until a whole stable window has passed without that;
//   - a step is bounded by the scale-up rate (1000× the ready replicas) and
//     the scale-down rate (half of them at a time);
//   - a scale-down waits out ScaleDownDelay (the highest count asked for in
//     that time is kept);
//   - with min 0, the last replica goes once no load was seen for the
//     scale-to-zero grace (the function's idleTimeout);
//   - min and max bound the result.
//
// Between decisions, Activate is the count for requests to a function at
// zero, and Burst bounds what the activator may add when requests wait
// behind busy replicas.
//
// Load is kept in a Window of one-second buckets, into which every gateway
// adds what it saw. Nothing here reads a clock, starts a goroutine or
// touches a replica: the caller passes the time in and acts on the result.
package autoscaler

import (
	"fmt"
	"math"
	"time"

	"nimbus/internal/function"
)

// Rates bounding one decision's step, as Knative's defaults.
const (
	MaxScaleUpRate   = 1000.0
	MaxScaleDownRate = 2.0
	// PanicWindowShare is the panic window's share of the stable window;
	// MinPanicWindow its least length: one-second buckets make a window of
	// one bucket follow every hiccup.
	PanicWindowShare = 0.1
	MinPanicWindow   = 2 * time.Second
)

// Spec is what a decision is made against.
type Spec struct {
	Min, Max int
	// Metric is function.ScaleConcurrency, ScaleRPS or ScaleCPU.
	Metric string
	// Target is the metric's value per replica aimed at (utilization applied).
	Target         float64
	StableWindow   time.Duration
	PanicWindow    time.Duration
	PanicThreshold float64
	ScaleDownDelay time.Duration
	// ZeroGrace is how long without load before the last replica goes
	// (only with Min 0).
	ZeroGrace time.Duration
}

// SpecFor reads a function's scale settings (WithDefaults applied).
func SpecFor(s function.Scale) Spec {
	stable := time.Duration(s.StableWindow)
	return Spec{
		Min: s.Min, Max: s.Max, Metric: s.Type, Target: max(s.TargetValue(), 1e-3),
		StableWindow: stable, PanicWindow: max(time.Duration(float64(stable)*PanicWindowShare), MinPanicWindow),
		PanicThreshold: s.PanicThreshold, ScaleDownDelay: time.Duration(s.ScaleDownDelay),
		ZeroGrace: time.Duration(s.IdleTimeout),
	}
}

// Stats is the load a decision sees.
type Stats struct {
	// Stable and Panic are the metric's averages over the two windows.
	Stable, Panic float64
	// Current is the metric in the last whole second: above zero, the
	// function is active now (the averages linger after load stops).
	Current float64
	// Ready is how many replicas are ready now.
	Ready int
}

// State is what a decider remembers between decisions; the zero State is
// a function that has never been asked for anything.
type State struct {
	Desired int
	// PanicSince is when the panic window last crossed the threshold; zero
	// when not in panic.
	PanicSince time.Time
	// PanicDesired is the highest count asked for during this panic.
	PanicDesired int
	// LastActive is when load was last seen.
	LastActive time.Time
	// recent are the counts asked for within ScaleDownDelay.
	recent []asked
}

type asked struct {
	at time.Time
	n  int
}

// Decision is one decision and why.
type Decision struct {
	Desired int
	Panic   bool
	Reason  string
}

// Decide returns how many replicas the function should have now.
func Decide(s Spec, st Stats, prev State, now time.Time) (Decision, State) {
	next := prev
	next.recent = append([]asked(nil), prev.recent...)
	if st.Current > 0 {
		next.LastActive = now
	}
	ready := float64(max(st.Ready, 1))
	up := int(math.Ceil(MaxScaleUpRate * ready))
	down := int(math.Floor(ready / MaxScaleDownRate))
	stable := clamp(int(math.Ceil(st.Stable/s.Target)), down, up)
	panicN := clamp(int(math.Ceil(st.Panic/s.Target)), down, up)

	over := float64(panicN)/ready >= s.PanicThreshold
	switch {
	case over:
		next.PanicSince = now
	case !prev.PanicSince.IsZero() && now.Sub(prev.PanicSince) > s.StableWindow:
		next.PanicSince, next.PanicDesired = time.Time{}, 0
	}
	var d Decision
	if !next.PanicSince.IsZero() {
		next.PanicDesired = max(next.PanicDesired, panicN)
		d = Decision{Desired: next.PanicDesired, Panic: true,
			Reason: fmt.Sprintf("panic: %s over %s asks for %d (%d ready); no scale-down until %s calm", s.unit(st.Panic), s.PanicWindow, panicN, st.Ready, s.StableWindow)}
	} else if panicN > stable {
		// Up on the quicker window: the stable one lags a rising load.
		d = Decision{Desired: panicN, Reason: fmt.Sprintf("%s over %s at %s per replica", s.unit(st.Panic), s.PanicWindow, s.unit(s.Target))}
	} else {
		d = Decision{Desired: stable, Reason: fmt.Sprintf("%s over %s at %s per replica", s.unit(st.Stable), s.StableWindow, s.unit(s.Target))}
	}

	if s.ScaleDownDelay > 0 {
		keep := next.recent[:0]
		for _, a := range next.recent {
			if now.Sub(a.at) < s.ScaleDownDelay {
				keep = append(keep, a)
			}
		}
		next.recent = append(keep, asked{now, d.Desired})
		held := d.Desired
		for _, a := range next.recent {
			held = max(held, a.n)
		}
		if held > d.Desired {
			d.Desired = held
			d.Reason += fmt.Sprintf("; %d kept by the scale-down delay of %s", held, s.ScaleDownDelay)
		}
	}

	idle := now.Sub(next.LastActive)
	switch {
	case d.Desired == 0 && prev.Desired > 0 && idle < s.ZeroGrace:
		d.Desired = 1
		d.Reason = fmt.Sprintf("no load for %s; scale to zero after %s", idle.Round(time.Second), s.ZeroGrace)
	case s.Min == 0 && idle >= s.ZeroGrace && (prev.Desired > 0 || d.Desired > 0):
		d = Decision{Reason: fmt.Sprintf("no load for %s: scale to zero", s.ZeroGrace)}
		next.PanicSince, next.PanicDesired, next.recent = time.Time{}, 0, nil
	}
	if d.Desired < s.Min {
		d.Desired = s.Min
		d.Reason += fmt.Sprintf("; min %d", s.Min)
	}
	if d.Desired > s.Max {
		d.Desired = s.Max
		d.Reason += fmt.Sprintf("; max %d", s.Max)
	}
	next.Desired = d.Desired
	return d, next
}

// Activate is the decision when a request finds no replica with a free
// slot: at least one replica, at once, without waiting for a window, and
// for the concurrency metric as many as active (the requests in flight or
// waiting) needs, but never more than there are requests: a replica no
// request could use is headroom, which the windows add at the next tick
// if the load stays (one request to a function that takes one at a time
// starts one replica, not two).
func Activate(s Spec, prev State, active int, now time.Time) (Decision, State) {
	next := prev
	next.LastActive = now
	n := max(prev.Desired, 1)
	if s.Metric == function.ScaleConcurrency {
		n = max(n, min(int(math.Ceil(float64(active)/s.Target)), active))
	}
	n = min(max(n, s.Min), s.Max)
	next.Desired = n
	return Decision{Desired: n, Reason: fmt.Sprintf("requests found no free replica (%d in flight or waiting)", active)}, next
}

// MaxBurstShare bounds a burst: a quarter again the replicas decided.
const MaxBurstShare = 0.25

// Burst is how many replicas to keep when a request waited behind busy
// ones and want (one more than are ready and starting) is asked for: want,
// but at most a quarter again the decided count (at least one more), and
// within max. The decider sees the load at its next tick; the bound keeps
// a stall of the machine, which queues everything while replicas start in
// a few milliseconds each, from chaining asks up to max.
func Burst(s Spec, decided, want int) int {
	limit := decided + max(1, int(math.Ceil(float64(decided)*MaxBurstShare)))
	return min(want, limit, s.Max)
}

func (s Spec) unit(v float64) string {
	switch s.Metric {
	case function.ScaleRPS:
		return fmt.Sprintf("%.3g req/s", v)
	case function.ScaleCPU:
		return fmt.Sprintf("%.4gm CPU", v)
	}
	return fmt.Sprintf("%.3g in flight", v)
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }
