package autoscaler

import "time"

// Window keeps a metric in one-second buckets for the last Span: each
// gateway adds, once a second, what it saw in that second (the average
// requests in flight or waiting, the requests begun, or the CPU used), so a
// bucket holds the whole cluster's load. The zero Window is not usable; use
// NewWindow. Not safe for concurrent use.
type Window struct {
	span    int64     // seconds kept
	buckets []float64 // ring, by unix second mod len
	secs    []int64   // the unix second each bucket holds
	first   int64     // first second with data; 0 for none
}

// NewWindow keeps span of buckets (at least one second).
func NewWindow(span time.Duration) *Window {
	n := max(int64(span/time.Second), 1)
	return &Window{span: n, buckets: make([]float64, n), secs: make([]int64, n)}
}

// Add adds v to the bucket of the second holding at.
func (w *Window) Add(at time.Time, v float64) {
	s := at.Unix()
	i := s % w.span
	if w.secs[i] != s {
		w.secs[i], w.buckets[i] = s, 0
	}
	w.buckets[i] += v
	if w.first == 0 || s < w.first {
		w.first = s
	}
}

// Average is the mean per second over the d before now (the second holding
// now excluded, as it is still being filled), counting seconds without data
// as zero but not seconds before the first data: a window younger than d is
// averaged over its own age. ok is false when the window holds no data.
func (w *Window) Average(now time.Time, d time.Duration) (avg float64, ok bool) {
	if w.first == 0 {
		return 0, false
	}
	end := now.Unix() // exclusive
	n := min(max(int64(d/time.Second), 1), w.span)
	start := max(end-n, w.first)
	if start >= end { // only the current second holds data
		start, end = end, end+1
	}
	var sum float64
	for s := start; s < end; s++ {
		if i := s % w.span; w.secs[i] == s {
			sum += w.buckets[i]
		}
	}
	return sum / float64(end-start), true
}

// Sample is what one gateway saw of a function in one interval: the
// average requests in flight or waiting, the requests begun, and the CPU
// its replicas used (millicores, averaged).
type Sample struct {
	Concurrency float64 `json:"c"`
	Requests    float64 `json:"r"`
	CPU         float64 `json:"cpu,omitempty"`
}

// Value is the sample's value of a metric, per second of an interval of d.
func (s Sample) Value(metric string, d time.Duration) float64 {
	switch metric {
	case "rps":
		return s.Requests / max(d.Seconds(), 1e-9)
	case "cpu":
		return s.CPU
	}
	return s.Concurrency
}
