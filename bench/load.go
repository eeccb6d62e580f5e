package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// loadResult is one closed-loop run at a fixed concurrency.
type loadResult struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	RPS      float64       `json:"rps"`
}

// newClient keeps one connection per worker alive.
func newClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
}

// loader runs one closed-loop load: wrk when installed, else goLoader.
type loader interface {
	run(url string, conc int, dur time.Duration) (loadResult, error)
}

// goLoader is the built-in load generator.
type goLoader struct{}

func (goLoader) run(url string, conc int, dur time.Duration) (loadResult, error) {
	return load(url, conc, 0, dur), nil
}

// load sends POST url with a 6-byte body from conc workers, first for warmup
// (not counted), then for dur. Every worker stops by itself at the deadline.
func load(url string, conc int, warmup, dur time.Duration) loadResult {
	client := newClient(conc)
	defer client.CloseIdleConnections()
	run := func(d time.Duration, record bool) ([][]time.Duration, int, time.Duration) {
		lat := make([][]time.Duration, conc)
		errs := make([]int, conc)
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		began := time.Now()
		var wg sync.WaitGroup
		for w := range conc {
			wg.Go(func() {
				if record {
					lat[w] = make([]time.Duration, 0, 1<<16)
				}
				for ctx.Err() == nil {
					t0 := time.Now()
					req, _ := http.NewRequest("POST", url, strings.NewReader("hello\n"))
					req.Header.Set("Content-Type", "text/plain")
					resp, err := client.Do(req)
					if err != nil {
						errs[w]++
						continue
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(b) != "hello\n" {
						errs[w]++
						continue
					}
					if record {
						lat[w] = append(lat[w], time.Since(t0))
					}
				}
			})
		}
		wg.Wait()
		total := 0
		for _, e := range errs {
			total += e
		}
		return lat, total, time.Since(began)
	}
	if warmup > 0 {
		run(warmup, false)
	}
	lat, errs, elapsed := run(dur, true)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r := loadResult{Requests: len(all), Errors: errs, Elapsed: elapsed}
	r.RPS = float64(len(all)) / elapsed.Seconds()
	r.P50, r.P99 = percentile(all, 50), percentile(all, 99)
	return r
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }
