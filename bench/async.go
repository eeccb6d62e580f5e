package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"nimbus/internal/function"
)

// asyncResult is accepted-and-executed throughput of /async-function.
type asyncResult struct {
	Accepted      int64   `json:"accepted"`
	Executed      int64   `json:"executed"`
	Lost          int64   `json:"lost"`
	DeadLetters   int     `json:"dead_letters"`
	AcceptPerSec  float64 `json:"accepted_per_sec"`
	ExecutePerSec float64 `json:"accepted_and_executed_per_sec"`
}

// benchAsync posts total invocations from conc clients, each answered 202
// only after a synced write, then waits until the function has run them all
// (its invocation count, from the API) and reports both rates.
func benchAsync(n *nimbusProc, fnBin string, conc, total int) (asyncResult, error) {
	var r asyncResult
	if err := n.deployFn(fnBin, "async", func(f *function.Function) {
		f.Scale.Min, f.Scale.Max, f.Scale.MaxConcurrency = 1, 1, 1000
	}); err != nil {
		return r, err
	}
	if err := waitHTTP(n.url+"/function/async", 30*time.Second); err != nil {
		return r, err
	}
	base := invocations(n, "async")
	client := newClient(conc)
	var accepted atomic.Int64
	var next atomic.Int64
	began := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(total) {
				resp, err := client.Post(n.url+"/async-function/async", "text/plain", strings.NewReader("hello\n"))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	acceptTook := time.Since(began)
	r.Accepted = accepted.Load()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if r.Executed = invocations(n, "async") - base; r.Executed >= r.Accepted {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(began)
	dl, _ := n.client.DeadLetters(context.Background(), "", "async")
	r.DeadLetters = len(dl)
	r.Lost = max(0, r.Accepted-r.Executed-int64(r.DeadLetters))
	r.AcceptPerSec = float64(r.Accepted) / acceptTook.Seconds()
	r.ExecutePerSec = float64(min(r.Executed, r.Accepted)) / took.Seconds()
	if r.Accepted == 0 {
		return r, fmt.Errorf("no async invocation was accepted")
	}
	return r, nil
}

func invocations(n *nimbusProc, name string) int64 {
	v, err := n.client.Get(context.Background(), "", name)
	if err != nil {
		return 0
	}
	return v.Status.Invocations
}
