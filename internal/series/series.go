// Package series keeps the last minutes of each function's invocations in
// memory — counts by status class, latency percentiles, cold starts and
// ready replicas, in fixed steps — so that the web UI can draw them
// without a Prometheus beside nimbus. The same events feed the gateway's
// Prometheus metrics; this is their recent past, in a ring per function.
//
// Time is passed in: nothing here reads a clock.
package series

import (
	"math"
	"sync"
	"time"
)

// Latency buckets: upper bounds growing by bucketGrowth from firstBucket;
// the last bucket takes everything above.
const (
	firstBucket  = 250 * time.Microsecond
	bucketGrowth = 1.25
	numBuckets   = 80 // the last bound is about 3 hours
)

var bounds = func() [numBuckets]float64 {
	var b [numBuckets]float64
	v := firstBucket.Seconds()
	for i := range b {
		b[i] = v
		v *= bucketGrowth
	}
	return b
}()

// Point is one step of a function's series.
type Point struct {
	// T is the step's start.
	T time.Time `json:"t"`
	// OK counts answers below 400, ClientErrors 4xx, ServerErrors 5xx.
	OK           int `json:"ok"`
	ClientErrors int `json:"clientErrors"`
	ServerErrors int `json:"serverErrors"`
	// P50 and P99 are latency percentiles in seconds (0 without calls).
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	// ColdStarts counts the starts requests waited for.
	ColdStarts int `json:"coldStarts"`
	// Ready is the most replicas ready at once in the step; a step with
	// no report carries the last count reported before it.
	Ready int `json:"ready"`
}

// Summary is a function's recent figures.
type Summary struct {
	Window       string  `json:"window"`
	Invocations  int     `json:"invocations"`
	ClientErrors int     `json:"clientErrors"`
	ServerErrors int     `json:"serverErrors"`
	P50          float64 `json:"p50"`
	P99          float64 `json:"p99"`
	ColdStarts   int     `json:"coldStarts"`
}

type step struct {
	at                 int64 // step number; a slot holding another is stale
	ok, client, server int
	cold               int
	ready              int // the most at once
	readyLast          int // the last report
	readySeen          bool
	hist               [numBuckets]uint32
	histN              uint32
}

// Fn is one function's ring; its events take only its own lock.
type Fn struct {
	step      time.Duration
	n         int
	mu        sync.Mutex
	steps     []step // made on the first event
	lastReady int
}

// Ring holds every function's series.
type Ring struct {
	step time.Duration
	n    int
	mu   sync.Mutex
	fns  map[string]*Fn
}

// New keeps n steps of length step per function (90 × 10 s: 15 minutes).
func New(step time.Duration, n int) *Ring {
	return &Ring{step: step, n: n, fns: map[string]*Fn{}}
}

// For returns key's series, made if new: callers keep it, so that an event
// takes only the function's lock.
func (r *Ring) For(key string) *Fn {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.fns[key]
	if f == nil {
		f = &Fn{step: r.step, n: r.n}
		r.fns[key] = f
	}
	return f
}

func (r *Ring) lookup(key string) *Fn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fns[key]
}

// Forget drops a function's series.
func (r *Ring) Forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.fns, key)
}

// slotLocked returns the step at now, cleared if it held an older one.
func (f *Fn) slotLocked(now time.Time) *step {
	if f.steps == nil {
		f.steps = make([]step, f.n)
	}
	at := now.UnixNano() / int64(f.step)
	if at < 0 {
		at = 0 // before 1970: a clock this wrong lands in step 0
	}
	s := &f.steps[int(at%int64(f.n))]
	if s.at != at {
		*s = step{at: at}
	}
	return s
}

// Observe counts one answer of status after took.
func (f *Fn) Observe(status int, took time.Duration, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.slotLocked(now)
	switch {
	case status >= 500:
		s.server++
	case status >= 400:
		s.client++
	default:
		s.ok++
	}
	s.hist[bucket(took.Seconds())]++
	s.histN++
}

// ColdStart counts a start a request waited for.
func (f *Fn) ColdStart(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slotLocked(now).cold++
}

// Ready records how many replicas are ready now.
func (f *Fn) Ready(n int, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.slotLocked(now)
	if !s.readySeen || n > s.ready {
		s.ready = n
	}
	s.readyLast, s.readySeen = n, true
	f.lastReady = n
}

// Series returns key's steps up to now, oldest first: all n of them, the
// ones without events zero. Steps with no replica report carry the count
// last reported before them.
func (r *Ring) Series(key string, now time.Time) []Point {
	out := make([]Point, r.n)
	last := now.UnixNano() / int64(r.step)
	f := r.lookup(key)
	if f == nil {
		for i := range out {
			out[i].T = time.Unix(0, (last-int64(r.n-1-i))*int64(r.step)).UTC()
		}
		return out
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The count before the window's first report is not kept: that first
	// report stands in for it (with none, the last report).
	ready := f.lastReady
	for i := range r.n {
		if s := f.stepAt(last - int64(i)); s != nil && s.readySeen {
			ready = s.ready
		}
	}
	for i := range r.n {
		at := last - int64(r.n-1-i)
		p := Point{T: time.Unix(0, at*int64(r.step)).UTC(), Ready: ready}
		if s := f.stepAt(at); s != nil {
			p.OK, p.ClientErrors, p.ServerErrors, p.ColdStarts = s.ok, s.client, s.server, s.cold
			p.P50, p.P99 = percentile(&s.hist, s.histN, 0.50), percentile(&s.hist, s.histN, 0.99)
			if s.readySeen {
				p.Ready, ready = s.ready, s.readyLast
			}
		}
		out[i] = p
	}
	return out
}

// Summary sums key's last window (whole steps, the current one included).
func (r *Ring) Summary(key string, window time.Duration, now time.Time) Summary {
	sum := Summary{Window: window.String()}
	f := r.lookup(key)
	if f == nil {
		return sum
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var hist [numBuckets]uint32
	var n uint32
	last := now.UnixNano() / int64(r.step)
	for i := range min(int(window/r.step), r.n) {
		s := f.stepAt(last - int64(i))
		if s == nil {
			continue
		}
		sum.Invocations += s.ok + s.client + s.server
		sum.ClientErrors += s.client
		sum.ServerErrors += s.server
		sum.ColdStarts += s.cold
		for b, c := range s.hist {
			hist[b] += c
		}
		n += s.histN
	}
	sum.P50, sum.P99 = percentile(&hist, n, 0.50), percentile(&hist, n, 0.99)
	return sum
}

func (f *Fn) stepAt(at int64) *step {
	if at < 0 || f.steps == nil {
		return nil
	}
	s := &f.steps[int(at%int64(f.n))]
	if s.at != at {
		return nil
	}
	return s
}

// bucket is the index of the first bound at or above v seconds.
func bucket(v float64) int {
	if v <= bounds[0] {
		return 0
	}
	i := int(math.Ceil(math.Log(v/bounds[0]) / math.Log(bucketGrowth)))
	// Floating point may land one off either way.
	for i > 0 && i < numBuckets && bounds[i-1] >= v {
		i--
	}
	for i < numBuckets-1 && bounds[i] < v {
		i++
	}
	return min(i, numBuckets-1)
}

// percentile reads quantile q from a histogram, interpolating
// geometrically within the bucket it falls in.
func percentile(hist *[numBuckets]uint32, n uint32, q float64) float64 {
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var seen float64
	for i, c := range hist {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			hi := bounds[i]
			lo := hi / bucketGrowth
			if i == 0 {
				lo = hi / 2
			}
			frac := (rank - seen) / float64(c)
			return lo * math.Pow(hi/lo, frac)
		}
		seen += float64(c)
	}
	return bounds[numBuckets-1]
}
