package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"nimbus/internal/function"
)

// lambdaReport is the Lambda protocol's and API's figures: warm calls of
// a trivial handler through the Runtime API beside the http protocol and
// the direct call (interleaved, one at a time), cold starts, and the CPU
// nimbus spends per signed Invoke beside a plain call of the same
// function.
type lambdaReport struct {
	Direct, HTTP, Lambda latency
	Cold                 latency
	InvokeCPU, PlainCPU  time.Duration
	// HTTPCPU is nimbus's CPU per call of the http function, beside
	// PlainCPU (the lambda function's, through the same /function/).
	HTTPCPU time.Duration
	// HandlerCPU and FnCPU are the CPU the function's own process spent
	// per warm call: the aws-lambda-go handler (its two Runtime API
	// requests included) and the http fn, a share of each protocol's cost
	// that is not nimbus's.
	HandlerCPU, FnCPU time.Duration
	Calls             int
	// AddedHTTP and AddedLambda are the medians of each call's time less
	// the direct call's of the same round: what nimbus adds, paired, so
	// that the machine drifting between rounds cancels out.
	AddedHTTP, AddedLambda time.Duration
}

// lambdaEvent is the event sent, a JSON string, which the handler answers.
const lambdaEvent = `"hello"`

func benchLambda(nb *nimbusProc, tmp, direct string, coldRuns, runs int) (*lambdaReport, error) {
	bin := filepath.Join(tmp, "bootstrap")
	cmd := exec.Command("go", "build", "-o", bin, "nimbus/bench/lambdafn")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build nimbus/bench/lambdafn: %v\n%s", err, b)
	}
	deploy := func(name string, mod func(*function.Function)) error {
		return nb.deployFile(bin, "bootstrap", name, func(f *function.Function) {
			f.Protocol, f.Command = function.ProtocolLambda, []string{"./bootstrap"}
			mod(f)
		})
	}
	if err := deploy("bench-lambda", func(f *function.Function) { f.Scale.Min, f.Scale.Max = 1, 1 }); err != nil {
		return nil, err
	}
	addr := strings.TrimPrefix(nb.url, "http://")
	lc := newRawClientBody(addr, "/function/bench-lambda", lambdaEvent)
	if err := retry(30*time.Second, func() error { _, err := lc.call(); return err }); err != nil {
		return nil, err
	}
	dc := newRawClient(strings.TrimSuffix(strings.TrimPrefix(direct, "http://"), "/"), "/")
	hc := newRawClient(addr, "/function/bench")
	var ds, hs, ls []time.Duration
	fnPID, lambdaPID := childOf(nb.cmd.Process.Pid, "./fn"), childOf(nb.cmd.Process.Pid, "./bootstrap")
	fn0, l0 := cpuTime(fnPID), cpuTime(lambdaPID)
	for range runs { // interleaved, so all three see the same machine
		for _, c := range []struct {
			rc  *rawClient
			out *[]time.Duration
		}{{dc, &ds}, {hc, &hs}, {lc, &ls}} {
			d, err := c.rc.call()
			if err != nil {
				return nil, err
			}
			*c.out = append(*c.out, d)
		}
	}
	r := &lambdaReport{Direct: summarize(ds), HTTP: summarize(hs), Lambda: summarize(ls), Calls: runs,
		AddedHTTP: pairedAdded(hs, ds), AddedLambda: pairedAdded(ls, ds)}
	if fnPID > 0 && lambdaPID > 0 {
		r.FnCPU, r.HandlerCPU = (cpuTime(fnPID)-fn0)/time.Duration(runs), (cpuTime(lambdaPID)-l0)/time.Duration(runs)
	}

	if err := deploy("cold-lambda", func(f *function.Function) { f.Scale.IdleTimeout = function.Duration(100 * time.Millisecond) }); err != nil {
		return nil, err
	}
	cl := newRawClientBody(addr, "/function/cold-lambda", lambdaEvent)
	if err := retry(30*time.Second, func() error { _, err := cl.call(); return err }); err != nil { // unpacks the package once
		return nil, err
	}
	cl.c.Close()
	cold, err := series(coldRuns, func() (time.Duration, error) {
		if err := nb.waitInstances("cold-lambda", 0, 10*time.Second); err != nil {
			return 0, err
		}
		c := newRawClientBody(addr, "/function/cold-lambda", lambdaEvent)
		d, err := c.call()
		if c.c != nil {
			c.c.Close()
		}
		return d, err
	})
	if err != nil {
		return nil, err
	}
	r.Cold = summarize(cold)

	// The CPU of a signed Invoke (SigV4, the key's lookup, the API) beside
	// a plain call of the same function, sequential, measured on nimbus.
	ctx := context.Background()
	key, err := nb.client.CreateKey(ctx, []string{"default"}, "bench")
	if err != nil {
		return nil, err
	}
	sdk := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(nb.url), RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}, nil
		})})
	invoke := func() error {
		out, err := sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("bench-lambda"), Payload: []byte(lambdaEvent)})
		if err == nil && (out.StatusCode != 200 || string(out.Payload) != lambdaEvent) {
			err = fmt.Errorf("invoke: %d %s", out.StatusCode, out.Payload)
		}
		return err
	}
	if err := invoke(); err != nil { // warm the client's connection
		return nil, err
	}
	pid := nb.cmd.Process.Pid
	c0 := cpuTime(pid)
	for range runs {
		if err := invoke(); err != nil {
			return nil, err
		}
	}
	c1 := cpuTime(pid)
	for range runs {
		if _, err := lc.call(); err != nil {
			return nil, err
		}
	}
	c2 := cpuTime(pid)
	for range runs {
		if _, err := hc.call(); err != nil {
			return nil, err
		}
	}
	c3 := cpuTime(pid)
	r.InvokeCPU, r.PlainCPU, r.HTTPCPU = (c1-c0)/time.Duration(runs), (c2-c1)/time.Duration(runs), (c3-c2)/time.Duration(runs)
	return r, nil
}

// pairedAdded is the median of xs[i] - base[i].
func pairedAdded(xs, base []time.Duration) time.Duration {
	d := make([]time.Duration, len(xs))
	for i := range xs {
		d[i] = xs[i] - base[i]
	}
	return percentile(d, 50)
}

// retry calls f until it succeeds or within passes.
func retry(within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runLambdaOnly runs the lambda part of the latency scenario alone, with
// the baselines it compares against (the direct call, the http protocol,
// the bare cold start), and prints its figures and targets.
func runLambdaOnly(coldRuns, runs int) error {
	tmp, err := workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fnBin, _, nimbusBin, err := buildAll(tmp)
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
	nb, err := startNimbus(nimbusBin, filepath.Join(tmp, "data"), env)
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
	rep := report{When: time.Now().UTC(), GOMAXPROCS: numCPU(), Cold: map[string]latency{}}
	bc, err := series(coldRuns, func() (time.Duration, error) { return bareColdStart(fnBin, env) })
	if err != nil {
		return err
	}
	rep.Cold["bare exec to first 200"] = summarize(bc)
	if rep.Lambda, err = benchLambda(nb, tmp, direct, coldRuns, runs); err != nil {
		return err
	}
	l := rep.Lambda
	fmt.Printf("lambda (interleaved, one at a time, %d calls each): p50 direct %s µs, nimbus http %s µs, nimbus lambda %s µs; cold start p50 %.2f ms (bare exec %.2f ms)\n",
		l.Calls, us(l.Direct.P50), us(l.HTTP.P50), us(l.Lambda.P50), float64(l.Cold.P50)/1e6, float64(rep.Cold["bare exec to first 200"].P50)/1e6)
	fmt.Printf("added, paired by round (median of call - direct): http %s µs, lambda %s µs: ratio %.2f\n", us(l.AddedHTTP), us(l.AddedLambda), float64(l.AddedLambda)/float64(max(l.AddedHTTP, 1)))
	fmt.Printf("CPU in nimbus per call: %s µs by the Lambda Invoke API (SigV4 included), %s µs by /function/ (the http function's: %s µs)\n", us(l.InvokeCPU), us(l.PlainCPU), us(l.HTTPCPU))
	fmt.Printf("CPU in the function's process per warm call: %s µs the aws-lambda-go handler, %s µs the http fn\n", us(l.HandlerCPU), us(l.FnCPU))
	for _, t := range targets(rep) {
		if strings.Contains(t.What, "lambda") || strings.Contains(t.What, "Runtime API") {
			fmt.Printf("%-50s %12s  target %-14s met %v\n", t.What, t.Value, t.Goal, t.Met)
		}
	}
	return nil
}

// childOf is the pid of a process whose parent is parent and whose first
// argument is arg0 (one instance of a function), or 0.
func childOf(parent int, arg0 string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"); len(args) == 1 && args[0] == arg0 {
			return pid
		}
	}
	return 0
}
