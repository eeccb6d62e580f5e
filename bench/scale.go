package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"nimbus/internal/function"
)

// The scaling scenario: a function whose every request takes serviceTime
// (one request at a time per instance), under an open-loop load that ramps
// from 0 to peakRate, holds, and ramps back to 0; once with a fixed number
// of replicas sized for the peak, once autoscaled from zero.
const (
	serviceTime = 20 * time.Millisecond
	peakRate    = 400.0
	rampUp      = 20 * time.Second
	hold        = 20 * time.Second
	rampDown    = 20 * time.Second
	zeroGrace   = 5 * time.Second
)

// rate is the load's requests per second at t into the run.
func rate(t time.Duration) float64 {
	switch {
	case t < 0:
		return 0
	case t < rampUp:
		return peakRate * t.Seconds() / rampUp.Seconds()
	case t < rampUp+hold:
		return peakRate
	case t < rampUp+hold+rampDown:
		return peakRate * (1 - (t-rampUp-hold).Seconds()/rampDown.Seconds())
	}
	return 0
}

// needed is the replicas the load asks for at t: load × service time (one
// request at a time per replica), fractional.
func needed(t time.Duration) float64 { return rate(t) * serviceTime.Seconds() }

// ideal is the fewest whole replicas that carry the load at t when each
// request holds an instance for slot.
func ideal(t, slot time.Duration) float64 {
	return math.Ceil(rate(t)*slot.Seconds() - 1e-9)
}

type scaleResult struct {
	Setup    string `json:"setup"`
	Settings string `json:"settings"`
	Requests int    `json:"requests"`
	Errors   int    `json:"non_2xx"`
	// ToNeeded is from the start of the load until the replicas the peak
	// needs were ready.
	ToNeeded time.Duration `json:"to_needed_replicas_ns"`
	// Waited counts requests that spent over 5 ms beyond the service time
	// (queued in the activator, or for a start); WaitedP99 is their p99.
	Waited    int           `json:"waited"`
	WaitedP99 time.Duration `json:"waited_p99_ns"`
	// RampP99 is the p99 of requests sent during the ramp up, after its
	// first 2 s; P99 of all.
	RampP99 time.Duration `json:"ramp_p99_ns"`
	P99     time.Duration `json:"p99_ns"`
	// ReplicaSeconds are the instances that ran (sampled every 100 ms);
	// Ideal the fewest whole replicas that carry the load if a request held
	// an instance for the service time alone, IdealMeasured if it holds one
	// for the time measured through nimbus on an idle instance (the hop
	// included).
	ReplicaSeconds float64 `json:"replica_seconds"`
	Ideal          float64 `json:"ideal_replica_seconds"`
	IdealMeasured  float64 `json:"ideal_measured_replica_seconds"`
	// ToZero is from the end of the load until no instance ran.
	ToZero time.Duration `json:"to_zero_ns"`
	Peak   int           `json:"peak_replicas"`
	// Timeline is the instances at each whole second, with the load's
	// need then.
	Timeline []string `json:"timeline"`
}

type call struct {
	at, took time.Duration
	ok       bool
}

// runScale runs the scenario and prints its table.
func runScale(out string, rounds int) error {
	tmp, err := workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(os.Stderr, "building fn and nimbus…")
	fnBin, _, nimbusBin, err := buildAll(tmp)
	if err != nil {
		return err
	}
	nb, err := startNimbus(nimbusBin, filepath.Join(tmp, "data"), baseEnv())
	if err != nil {
		return err
	}
	defer stopProc(nb.cmd)
	peakNeed := int(math.Ceil(peakRate * serviceTime.Seconds()))
	env := map[string]string{"FN_SERVICE_TIME": serviceTime.String()}
	// How long a request holds an instance through nimbus: the median of
	// 200 calls, one at a time, to an idle instance.
	if err := nb.deployFn(fnBin, "probe", func(f *function.Function) {
		f.Env = env
		f.Scale.Min, f.Scale.Max, f.Scale.MaxConcurrency = 1, 1, 1
	}); err != nil {
		return err
	}
	if err := nb.waitInstances("probe", 1, 60*time.Second); err != nil {
		return err
	}
	var one []time.Duration
	for range 200 {
		t0 := time.Now()
		resp, err := http.Post(nb.url+"/function/probe", "text/plain", strings.NewReader("x"))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		one = append(one, time.Since(t0))
	}
	slot := percentile(one, 50)
	if err := nb.client.Delete(context.Background(), "", "probe"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "a request holds an instance for %s through nimbus (service time %s)\n", slot, serviceTime)
	// The baseline is sized for the peak with the same headroom (0.9) the
	// autoscaled function aims for.
	fixed := int(math.Ceil(peakRate * slot.Seconds() / 0.9))
	if err := nb.deployFn(fnBin, "fixed", func(f *function.Function) {
		f.Env = env
		f.Scale.Min, f.Scale.Max, f.Scale.MaxConcurrency = fixed, fixed, 1
	}); err != nil {
		return err
	}
	util := 0.9
	if err := nb.deployFn(fnBin, "scaled", func(f *function.Function) {
		f.Env = env
		f.Scale.Min, f.Scale.Max, f.Scale.MaxConcurrency = 0, 3*peakNeed, 1
		f.Scale.TargetUtilization = util
		f.Scale.StableWindow = function.Duration(10 * time.Second)
		f.Scale.IdleTimeout = function.Duration(zeroGrace)
	}); err != nil {
		return err
	}
	// Requests per second one instance carries; a rate target cannot see
	// queueing, so it keeps more headroom.
	perReplica, rpsUtil := 1/serviceTime.Seconds(), 0.8
	if err := nb.deployFn(fnBin, "scaled-rps", func(f *function.Function) {
		f.Env = env
		f.Scale.Min, f.Scale.Max, f.Scale.MaxConcurrency = 0, 3*peakNeed, 1
		f.Scale.Type, f.Scale.Target, f.Scale.TargetUtilization = function.ScaleRPS, &perReplica, rpsUtil
		f.Scale.StableWindow = function.Duration(10 * time.Second)
		f.Scale.IdleTimeout = function.Duration(zeroGrace)
	}); err != nil {
		return err
	}
	if err := nb.waitInstances("fixed", fixed, 60*time.Second); err != nil {
		return err
	}
	setups := []struct{ name, settings string }{
		{"fixed", fmt.Sprintf("%d replicas, always", fixed)},
		{"scaled", fmt.Sprintf("from 0, concurrency target 1 × %.1f, stable window 10s, zero after %s", util, zeroGrace)},
		{"scaled-rps", fmt.Sprintf("from 0, rps target %.0f × %.1f, stable window 10s, zero after %s", perReplica, rpsUtil, zeroGrace)},
	}
	runs := map[string][]scaleResult{}
	for round := range rounds {
		for _, s := range setups {
			fmt.Fprintf(os.Stderr, "round %d/%d, %s: %s of load…\n", round+1, rounds, s.name, rampUp+hold+rampDown)
			r, err := scaleRun(nb, s.name, peakNeed, slot)
			if err != nil {
				return err
			}
			r.Settings = s.settings
			runs[s.name] = append(runs[s.name], r)
		}
	}
	var results []scaleResult
	for _, s := range setups {
		results = append(results, medianResult(runs[s.name]))
	}
	if rounds > 1 {
		fmt.Printf("\nper round (ramp p99 ms, replica-seconds ÷ ideal₂):\n")
		for _, s := range setups {
			fmt.Printf("  %-10s", s.name)
			for _, r := range runs[s.name] {
				fmt.Printf("  %.1f, %.2f", float64(r.RampP99)/1e6, r.ReplicaSeconds/max(r.IdealMeasured, 1e-9))
			}
			fmt.Println()
		}
	}
	printScale(results, peakNeed, slot)
	b, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nJSON written to %s\n", out)
	return nil
}

// medianResult is the median of each figure over the rounds (errors and
// requests summed); its timeline is the first round's.
func medianResult(rs []scaleResult) scaleResult {
	m := rs[0]
	med := func(f func(scaleResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	dur := func(f func(scaleResult) time.Duration) time.Duration {
		return time.Duration(med(func(r scaleResult) float64 { return float64(f(r)) }))
	}
	m.Requests, m.Errors = 0, 0
	for _, r := range rs {
		m.Requests += r.Requests
		m.Errors += r.Errors
	}
	m.ToNeeded = dur(func(r scaleResult) time.Duration { return r.ToNeeded })
	m.WaitedP99 = dur(func(r scaleResult) time.Duration { return r.WaitedP99 })
	m.RampP99 = dur(func(r scaleResult) time.Duration { return r.RampP99 })
	m.P99 = dur(func(r scaleResult) time.Duration { return r.P99 })
	m.ToZero = dur(func(r scaleResult) time.Duration { return r.ToZero })
	m.Waited = int(med(func(r scaleResult) float64 { return float64(r.Waited) }))
	m.Peak = int(med(func(r scaleResult) float64 { return float64(r.Peak) }))
	m.ReplicaSeconds = med(func(r scaleResult) float64 { return r.ReplicaSeconds })
	m.Ideal = med(func(r scaleResult) float64 { return r.Ideal })
	m.IdealMeasured = med(func(r scaleResult) float64 { return r.IdealMeasured })
	return m
}

// scaleRun sends the load to one function, sampling its instances.
func scaleRun(nb *nimbusProc, name string, peakNeed int, slot time.Duration) (scaleResult, error) {
	r := scaleResult{Setup: name, ToNeeded: -1, ToZero: -1}
	url := nb.url + "/function/" + name
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}, Timeout: 30 * time.Second}
	total := rampUp + hold + rampDown
	var mu sync.Mutex
	var calls []call
	var wg sync.WaitGroup

	// Instances, every 100 ms, until the load has ended and they are gone
	// (or 60 s after it).
	type sample struct {
		at time.Duration
		n  int
	}
	var samples []sample
	start := time.Now()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			at := time.Since(start)
			list, err := nb.client.Instances(context.Background(), "", name)
			if err == nil {
				samples = append(samples, sample{at, len(list)})
				if at > total && (len(list) == 0 || name == "fixed") {
					return
				}
			}
			if at > total+60*time.Second {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// Open loop: the i-th request goes at the time the rate's integral
	// reaches i, whether or not earlier ones have answered.
	sent := 0.0
	for t := time.Duration(0); t < total; t += time.Millisecond {
		sent += rate(t) / 1000
		for ; sent >= 1; sent-- {
			at := t
			if d := time.Until(start.Add(at)); d > 0 {
				time.Sleep(d)
			}
			wg.Go(func() {
				t0 := time.Now()
				resp, err := client.Post(url, "text/plain", strings.NewReader("x"))
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				calls = append(calls, call{at: at, took: time.Since(t0), ok: ok})
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	<-sampled

	var all, ramp, waited []time.Duration
	for _, c := range calls {
		r.Requests++
		if !c.ok {
			r.Errors++
			continue
		}
		all = append(all, c.took)
		if c.at >= 2*time.Second && c.at < rampUp {
			ramp = append(ramp, c.took)
		}
		if c.took > serviceTime+5*time.Millisecond {
			waited = append(waited, c.took)
		}
	}
	r.P99, r.RampP99 = percentile(all, 99), percentile(ramp, 99)
	r.Waited, r.WaitedP99 = len(waited), percentile(waited, 99)
	for i, s := range samples {
		if r.ToNeeded < 0 && s.n >= peakNeed {
			r.ToNeeded = s.at
		}
		r.Peak = max(r.Peak, s.n)
		if sec := int(s.at / time.Second); sec >= len(r.Timeline) {
			r.Timeline = append(r.Timeline, fmt.Sprintf("%ds: %d (need %.1f)", sec, s.n, needed(s.at)))
		}
		if i == 0 {
			continue
		}
		dt := (s.at - samples[i-1].at).Seconds()
		r.ReplicaSeconds += float64(s.n) * dt
		if s.at <= total {
			r.Ideal += ideal(s.at, serviceTime) * dt
			r.IdealMeasured += ideal(s.at, slot) * dt
		}
		if r.ToZero < 0 && s.at > total && s.n == 0 {
			r.ToZero = s.at - total
		}
	}
	return r, nil
}

func printScale(rs []scaleResult, peakNeed int, slot time.Duration) {
	fmt.Printf("\nnimbus scaling scenario — a function of %s per request, one at a time per instance; load 0 → %.0f req/s in %s, held %s, back to 0 in %s (%d instances needed at the peak)\n\n",
		serviceTime, peakRate, rampUp, hold, rampDown, peakNeed)
	ms := func(d time.Duration) string {
		if d < 0 {
			return "never"
		}
		return fmt.Sprintf("%.1f", float64(d)/1e6)
	}
	sec := func(d time.Duration) string {
		if d < 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	fmt.Printf("a request holds an instance for %.1f ms through nimbus (median, one at a time): ideal₂ counts that, ideal₁ the service time alone\n\n", float64(slot)/1e6)
	fmt.Printf("%-10s %8s %6s %10s %7s %11s %12s %8s %10s %7s %7s %8s %8s %5s %8s\n", "setup", "requests", "non2xx", "to needed", "waited", "waited p99", "ramp p99 ms", "p99 ms",
		"replica·s", "ideal₁", "ideal₂", "÷ideal₁", "÷ideal₂", "peak", "to zero")
	for _, r := range rs {
		fmt.Printf("%-10s %8d %6d %10s %7d %11s %12s %8s %10.0f %7.0f %7.0f %8.2f %8.2f %5d %8s\n", r.Setup, r.Requests, r.Errors, sec(r.ToNeeded), r.Waited, ms(r.WaitedP99),
			ms(r.RampP99), ms(r.P99), r.ReplicaSeconds, r.Ideal, r.IdealMeasured, r.ReplicaSeconds/max(r.Ideal, 1e-9), r.ReplicaSeconds/max(r.IdealMeasured, 1e-9), r.Peak, sec(r.ToZero))
	}
	fmt.Println()
	for _, r := range rs {
		fmt.Printf("%s: %s\n", r.Setup, r.Settings)
	}
	for _, s := range rs {
		if !strings.HasPrefix(s.Setup, "scaled") {
			continue
		}
		fmt.Printf("\n%-46s %12s %24s %s\n", "target ("+s.Setup+")", "measured", "goal", "")
		for _, t := range []target{
			{"p99 during the ramp after its first 2 s", ms(s.RampP99) + " ms", fmt.Sprintf("≤ 3 × %s", serviceTime), s.RampP99 >= 0 && s.RampP99 <= 3*serviceTime},
			{"replica-seconds ÷ ideal₂", fmt.Sprintf("%.2f", s.ReplicaSeconds/max(s.IdealMeasured, 1e-9)), "≤ 1.3", s.ReplicaSeconds <= 1.3*s.IdealMeasured},
			{"back to zero after the load", sec(s.ToZero), fmt.Sprintf("≤ %s + 10 s", zeroGrace), s.ToZero >= 0 && s.ToZero <= zeroGrace+10*time.Second},
			{"non-2xx answers", fmt.Sprint(s.Errors), "0", s.Errors == 0},
		} {
			mark := "met"
			if !t.Met {
				mark = "NOT MET"
			}
			fmt.Printf("%-46s %12s %24s %s\n", t.What, t.Value, t.Goal, mark)
		}
	}
}
