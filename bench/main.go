// Command bench measures nimbus against its baselines in one run on this
// machine, with the same trivial Go function (bench/fn) everywhere:
//
//   - direct: the load generator calls the function itself (the floor);
//   - rproxy: through a minimal httputil.ReverseProxy (bench/rproxy), one hop;
//   - nimbus: through `nimbus up`, every gateway feature on.
//
// For each: req/s, p50 and p99 at concurrency 1 and 32, and the CPU time the
// hop's own process spent per request (from /proc, not counting the
// function). Then cold start (a request to a function scaled to zero) against
// the bare exec-to-first-200 of the same binary, and stdio latency against a
// bare fork+exec of it. It prints a table and writes JSON.
//
// Run from the repository root: go run ./bench [-rounds 3] [-duration 3s].
// go run ./bench -scenario scale runs the autoscaling scenario instead
// (scale.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/function"
)

var asyncCalls int

type setup struct {
	Name string
	URL  string
	PID  int // the hop's process; 0 for direct
}

type row struct {
	Setup      string        `json:"setup"`
	Conc       int           `json:"concurrency"`
	RPS        float64       `json:"rps"`
	Ratio      float64       `json:"ratio_to_direct"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	P50Added   time.Duration `json:"p50_added_ns"`
	CPUPerReq  time.Duration `json:"hop_cpu_per_request_ns"`
	Errors     int           `json:"errors"`
	RoundsRPS  []float64     `json:"rounds_rps"`
	RoundsP50  []float64     `json:"rounds_p50_us"`
	RoundsCPU  []float64     `json:"rounds_cpu_us"`
	TotalCount int           `json:"requests"`
}

type latency struct {
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	N   int           `json:"runs"`
}

type report struct {
	When       time.Time          `json:"when"`
	GOMAXPROCS int                `json:"cpus"`
	Rounds     int                `json:"rounds"`
	Loader     string             `json:"load_generator"`
	Duration   time.Duration      `json:"duration_ns"`
	Rows       []row              `json:"throughput"`
	Cold       map[string]latency `json:"cold_start"`
	Stdio      map[string]latency `json:"stdio"`
	Async      *asyncResult       `json:"async,omitempty"`
	Lambda     *lambdaReport      `json:"lambda,omitempty"`
	Targets    []target           `json:"targets"`
}

type target struct {
	What  string `json:"what"`
	Value string `json:"value"`
	Goal  string `json:"goal"`
	Met   bool   `json:"met"`
}

func main() {
	rounds := flag.Int("rounds", 3, "interleaved repetitions of the throughput runs, or of the scaling scenario (medians are reported)")
	dur := flag.Duration("duration", 3*time.Second, "measured time per throughput run")
	warm := flag.Duration("warmup", time.Second, "unmeasured time before each throughput run")
	coldRuns := flag.Int("cold-runs", 20, "cold starts to time")
	stdioRuns := flag.Int("stdio-runs", 300, "stdio calls to time")
	flag.IntVar(&asyncCalls, "async-calls", 10000, "asynchronous invocations to send at c=32")
	out := flag.String("out", "", "where to write the JSON report (default bench/results.json, or bench/scale.json for -scenario scale)")
	scenario := flag.String("scenario", "latency", "latency (throughput, cold start, stdio, lambda, async against their baselines), scale (autoscaling under a ramp, against fixed replicas), lambda (the lambda part of latency alone, printed, not written) or kube (the kube runtime on the harness's cluster, printed)")
	flag.Parse()
	if *scenario == "scale" {
		if *out == "" {
			*out = "bench/scale.json"
		}
		if err := runScale(*out, *rounds); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *scenario == "lambda" {
		if err := runLambdaOnly(*coldRuns, *stdioRuns); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *scenario == "kube" {
		if err := runKube(*coldRuns, *dur, *warm); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *scenario != "latency" {
		fmt.Fprintln(os.Stderr, "bench: -scenario is latency, scale, lambda or kube")
		os.Exit(2)
	}
	if *out == "" {
		*out = "bench/results.json"
	}
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds must be at least 1")
		os.Exit(2)
	}
	if err := run(*rounds, *dur, *warm, *coldRuns, *stdioRuns, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(rounds int, dur, warm time.Duration, coldRuns, stdioRuns int, out string) error {
	tmp, err := workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(os.Stderr, "building fn, rproxy and nimbus…")
	fnBin, rpBin, nimbusBin, err := buildAll(tmp)
	if err != nil {
		return err
	}
	env := baseEnv()

	directPort := freePort()
	fnCmd, err := startProc(append(env, "PORT="+strconv.Itoa(directPort)), fnBin)
	if err != nil {
		return err
	}
	defer stopProc(fnCmd)
	direct := fmt.Sprintf("http://127.0.0.1:%d/", directPort)
	if err := waitHTTP(direct, 10*time.Second); err != nil {
		return err
	}
	rpAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	rpCmd, err := startProc(env, rpBin, "-listen", rpAddr, "-target", direct)
	if err != nil {
		return err
	}
	defer stopProc(rpCmd)
	if err := waitHTTP("http://"+rpAddr+"/", 10*time.Second); err != nil {
		return err
	}
	nenv := env
	if v := os.Getenv("BENCH_NIMBUS_GOMAXPROCS"); v != "" {
		nenv = append(append([]string(nil), env...), "GOMAXPROCS="+v)
	}
	nb, err := startNimbus(nimbusBin, filepath.Join(tmp, "data"), nenv)
	if err != nil {
		return err
	}
	defer stopProc(nb.cmd)
	if err := nb.deployFn(fnBin, "bench", func(f *function.Function) {
		f.Scale.Min, f.Scale.Max, f.Scale.MaxConcurrency = 1, 1, 1000
	}); err != nil {
		return err
	}
	if err := waitHTTP(nb.url+"/function/bench", 30*time.Second); err != nil {
		return err
	}

	setups := []setup{
		{"direct", direct, 0},
		{"rproxy", "http://" + rpAddr + "/", rpCmd.Process.Pid},
		{"nimbus", nb.url + "/function/bench", nb.cmd.Process.Pid},
	}
	dk, dkInst, err := dockerSetup(fnBin)
	if err != nil {
		return err
	}
	if dk != nil {
		defer dk.Close(context.Background())
		defer dkInst.Stop(context.Background())
		if err := nb.deployDocker("bench-docker", func(f *function.Function) {
			f.Scale.Min, f.Scale.Max, f.Scale.MaxConcurrency = 1, 1, 1000
		}); err != nil {
			return err
		}
		if err := waitHTTP(nb.url+"/function/bench-docker", 60*time.Second); err != nil {
			return err
		}
		setups = append(setups,
			setup{"container", "http://" + dkInst.Addr() + "/", 0},
			setup{"nimbus→container", nb.url + "/function/bench-docker", nb.cmd.Process.Pid})
	}
	rep := report{When: time.Now().UTC(), GOMAXPROCS: numCPU(), Rounds: rounds, Duration: dur,
		Cold: map[string]latency{}, Stdio: map[string]latency{}}
	var ld loader = goLoader{}
	rep.Loader = "built-in Go client (install wrk for figures comparable with the reference method)"
	if w, ok := newWrk(tmp); ok {
		ld, rep.Loader = w, "wrk -t1 (the reference method)"
	}
	fmt.Fprintln(os.Stderr, "load generator:", rep.Loader)
	if rep.Rows, err = throughput(ld, setups, rounds, dur, warm); err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "cold starts…")
	if err := nb.deployFn(fnBin, "cold", func(f *function.Function) {
		f.Scale.IdleTimeout = function.Duration(100 * time.Millisecond)
	}); err != nil {
		return err
	}
	if err := waitHTTP(nb.url+"/function/cold", 30*time.Second); err != nil { // unpacks the package once
		return err
	}
	nc, err := series(coldRuns, func() (time.Duration, error) { return nimbusColdStart(nb, "cold") })
	if err != nil {
		return err
	}
	bc, err := series(coldRuns, func() (time.Duration, error) { return bareColdStart(fnBin, env) })
	if err != nil {
		return err
	}
	rep.Cold["nimbus"] = summarize(nc)
	rep.Cold["bare exec to first 200"] = summarize(bc)
	if dk != nil {
		if err := nb.deployDocker("cold-docker", func(f *function.Function) {
			f.Scale.Min = 0
			f.Scale.IdleTimeout = function.Duration(100 * time.Millisecond)
		}); err != nil {
			return err
		}
		if err := waitHTTP(nb.url+"/function/cold-docker", 60*time.Second); err != nil {
			return err
		}
		dc, err := series(coldRuns, func() (time.Duration, error) { return nimbusColdStart(nb, "cold-docker") })
		if err != nil {
			return err
		}
		rep.Cold["nimbus, container"] = summarize(dc)
	}

	fmt.Fprintln(os.Stderr, "stdio…")
	if err := nb.deployFn(fnBin, "stdio", func(f *function.Function) {
		f.Protocol = function.ProtocolStdio
		f.Command = []string{"./fn", "-stdio"}
	}); err != nil {
		return err
	}
	stdioURL := nb.url + "/function/stdio"
	if err := waitHTTP(stdioURL, 30*time.Second); err != nil {
		return err
	}
	rc := newRawClient(strings.TrimPrefix(nb.url, "http://"), "/function/stdio")
	var ns, bs []time.Duration
	for range stdioRuns { // interleaved, so both see the same machine
		d, err := rc.call()
		if err != nil {
			return err
		}
		ns = append(ns, d)
		if d, err = bareStdio(fnBin); err != nil {
			return err
		}
		bs = append(bs, d)
	}
	rep.Stdio["nimbus"] = summarize(ns)
	rep.Stdio["bare fork+exec"] = summarize(bs)

	fmt.Fprintln(os.Stderr, "lambda…")
	if rep.Lambda, err = benchLambda(nb, tmp, direct, coldRuns, stdioRuns); err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "async…")
	ar, err := benchAsync(nb, fnBin, 32, asyncCalls)
	if err != nil {
		return err
	}
	rep.Async = &ar

	rep.Targets = targets(rep)
	printReport(rep)
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nJSON written to %s\n", out)
	return nil
}

// throughput runs every setup at c=1 and c=32, rounds times, rotating the
// order each round, and keeps the median of each figure.
func throughput(ld loader, setups []setup, rounds int, dur, warm time.Duration) ([]row, error) {
	type key struct {
		setup string
		conc  int
	}
	samples := map[key][]loadResult{}
	cpus := map[key][]time.Duration{}
	for r := range rounds {
		for _, c := range []int{1, 32} {
			for i := range setups {
				s := setups[(i+r)%len(setups)]
				fmt.Fprintf(os.Stderr, "round %d/%d: %s c=%d…\n", r+1, rounds, s.Name, c)
				if _, err := ld.run(s.URL, c, warm); err != nil { // warm-up, not counted
					return nil, err
				}
				var cpu0 time.Duration
				if s.PID != 0 {
					cpu0 = cpuTime(s.PID)
				}
				lr, err := ld.run(s.URL, c, dur)
				if err != nil {
					return nil, err
				}
				k := key{s.Name, c}
				samples[k] = append(samples[k], lr)
				if s.PID != 0 && lr.Requests > 0 {
					cpus[k] = append(cpus[k], (cpuTime(s.PID)-cpu0)/time.Duration(lr.Requests))
				}
			}
		}
	}
	var rows []row
	directP50 := map[string]time.Duration{}
	directRPS := map[string]float64{}
	for _, c := range []int{1, 32} {
		for _, s := range setups {
			k := key{s.Name, c}
			rw := row{Setup: s.Name, Conc: c}
			var rps, p50, p99, cpu []float64
			for i, lr := range samples[k] {
				rps = append(rps, lr.RPS)
				p50 = append(p50, float64(lr.P50))
				p99 = append(p99, float64(lr.P99))
				rw.Errors += lr.Errors
				rw.TotalCount += lr.Requests
				rw.RoundsRPS = append(rw.RoundsRPS, float64(int(lr.RPS)))
				rw.RoundsP50 = append(rw.RoundsP50, float64(lr.P50.Microseconds()))
				if i < len(cpus[k]) {
					cpu = append(cpu, float64(cpus[k][i]))
					rw.RoundsCPU = append(rw.RoundsCPU, float64(cpus[k][i].Microseconds()))
				}
			}
			rw.RPS = median(rps)
			rw.P50 = time.Duration(median(p50))
			rw.P99 = time.Duration(median(p99))
			rw.CPUPerReq = time.Duration(median(cpu))
			// Each hop is compared with calling its own target directly.
			base := "direct"
			if strings.Contains(s.Name, "container") {
				base = "container"
			}
			if s.Name == base {
				directP50[base+fmt.Sprint(c)], directRPS[base+fmt.Sprint(c)] = rw.P50, rw.RPS
			}
			rw.Ratio = rw.RPS / directRPS[base+fmt.Sprint(c)]
			rw.P50Added = rw.P50 - directP50[base+fmt.Sprint(c)]
			rows = append(rows, rw)
		}
	}
	return rows, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func summarize(d []time.Duration) latency {
	return latency{P50: percentile(d, 50), P99: percentile(d, 99), N: len(d)}
}

func numCPU() int {
	n, _ := strconv.Atoi(os.Getenv("GOMAXPROCS"))
	if n > 0 {
		return n
	}
	return runtimeNumCPU()
}

func targets(r report) []target {
	get := func(setup string, c int) row {
		for _, x := range r.Rows {
			if x.Setup == setup && x.Conc == c {
				return x
			}
		}
		return row{}
	}
	n32, n1 := get("nimbus", 32), get("nimbus", 1)
	coldN, coldB := r.Cold["nimbus"], r.Cold["bare exec to first 200"]
	stN, stB := r.Stdio["nimbus"], r.Stdio["bare fork+exec"]
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	out := []target{
		{"nimbus req/s at c=32 ÷ direct", fmt.Sprintf("%.2f", n32.Ratio), "≥ 0.20", n32.Ratio >= 0.20},
		{"p50 added by nimbus at c=1", us(n1.P50Added) + " µs", "≤ 150 µs", n1.P50Added <= 150*time.Microsecond},
		{"CPU in nimbus per request (c=32)", us(n32.CPUPerReq) + " µs", "≤ 70 µs", n32.CPUPerReq <= 70*time.Microsecond},
		{"cold start p50 (bare: " + ms(coldB.P50) + ")", ms(coldN.P50), "≤ 15 ms", coldN.P50 <= 15*time.Millisecond},
		{"stdio p50 (bare fork+exec: " + ms(stB.P50) + ")", ms(stN.P50), "≤ bare + 0.5 ms", stN.P50 <= stB.P50+500*time.Microsecond},
	}
	if a := r.Async; a != nil {
		out = append(out, target{"async accepted-and-executed/s at c=32", fmt.Sprintf("%.0f/s, %d lost", a.ExecutePerSec, a.Lost),
			"≥ 2,000/s, 0 lost", a.ExecutePerSec >= 2000 && a.Lost == 0})
	}
	if l := r.Lambda; l != nil {
		addedHTTP, addedLambda := l.HTTP.P50-l.Direct.P50, l.Lambda.P50-l.Direct.P50
		ratio := float64(addedLambda) / float64(max(addedHTTP, 1))
		out = append(out,
			target{"Runtime API added p50 ÷ http's, c=1", fmt.Sprintf("%.2f", ratio), "≤ 1.5", ratio <= 1.5},
			target{"lambda cold start p50 (bare: " + ms(coldB.P50) + ")", ms(l.Cold.P50), "≤ bare + 3 ms", l.Cold.P50 <= coldB.P50+3*time.Millisecond})
	}
	if dc, ok := r.Cold["nimbus, container"]; ok {
		out = append(out, target{"container cold start p50", ms(dc.P50), "≤ 700 ms", dc.P50 <= 700*time.Millisecond})
		d32, dd := get("nimbus→container", 32), get("container", 32)
		ratio := d32.RPS / dd.RPS
		out = append(out, target{"nimbus→container req/s at c=32 ÷ container", fmt.Sprintf("%.2f", ratio), "≥ 0.20", ratio >= 0.20})
	}
	return out
}

func printReport(r report) {
	fmt.Printf("\nnimbus benchmark — %s, %d CPUs, median of %d rounds of %s, load by %s\n\n", r.When.Format(time.RFC3339), r.GOMAXPROCS, r.Rounds, r.Duration, r.Loader)
	fmt.Printf("%-17s %3s %10s %8s %9s %9s %12s %16s %7s\n", "setup", "c", "req/s", "÷target", "p50 µs", "p99 µs", "p50 added µs", "hop CPU µs/req", "errors")
	for _, x := range r.Rows {
		added, cpu := "—", "—"
		if x.Setup != "direct" && x.Setup != "container" {
			added, cpu = us(x.P50Added), us(x.CPUPerReq)
		}
		fmt.Printf("%-17s %3d %10.0f %8.2f %9s %9s %12s %16s %7d\n", x.Setup, x.Conc, x.RPS, x.Ratio, us(x.P50), us(x.P99), added, cpu, x.Errors)
	}
	fmt.Printf("\n%-34s %10s %10s %5s\n", "latency", "p50 ms", "p99 ms", "runs")
	for _, group := range []struct {
		title string
		m     map[string]latency
		order []string
	}{
		{"cold start", r.Cold, []string{"bare exec to first 200", "nimbus", "nimbus, container"}},
		{"stdio call", r.Stdio, []string{"bare fork+exec", "nimbus"}},
	} {
		for _, k := range group.order {
			l, ok := group.m[k]
			if !ok {
				continue
			}
			fmt.Printf("%-34s %10.2f %10.2f %5d\n", group.title+": "+k, float64(l.P50)/1e6, float64(l.P99)/1e6, l.N)
		}
	}
	if a := r.Async; a != nil {
		fmt.Printf("\nasync at c=32 (durable, synced writes): %d accepted (%.0f/s), %d executed, %.0f accepted-and-executed/s, %d dead letters, %d lost\n",
			a.Accepted, a.AcceptPerSec, a.Executed, a.ExecutePerSec, a.DeadLetters, a.Lost)
	}
	if l := r.Lambda; l != nil {
		fmt.Printf("\nlambda (interleaved, one at a time, %d calls each): p50 direct %s µs, nimbus http %s µs, nimbus lambda (Runtime API) %s µs; cold start p50 %.2f ms\n",
			l.Calls, us(l.Direct.P50), us(l.HTTP.P50), us(l.Lambda.P50), float64(l.Cold.P50)/1e6)
		fmt.Printf("CPU in nimbus per call of the lambda function: %s µs by the Lambda Invoke API (SigV4 included), %s µs by /function/ (the http function's: %s µs)\n",
			us(l.InvokeCPU), us(l.PlainCPU), us(l.HTTPCPU))
		fmt.Printf("CPU in the function's own process per warm call: %s µs the aws-lambda-go handler (its two Runtime API requests), %s µs the http fn\n",
			us(l.HandlerCPU), us(l.FnCPU))
	}
	fmt.Printf("\n%-46s %12s %16s %s\n", "target", "measured", "goal", "")
	for _, t := range r.Targets {
		mark := "met"
		if !t.Met {
			mark = "NOT MET"
		}
		fmt.Printf("%-46s %12s %16s %s\n", t.What, t.Value, t.Goal, mark)
	}
}
