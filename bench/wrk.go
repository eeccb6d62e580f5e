package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The reference figures this benchmark's targets come from were measured with
// wrk (one thread, keep-alive, POST "hello\n"). When wrk is installed the
// harness uses it too; its own cost per request is a fraction of a Go client's,
// so the latency a hop adds is not inflated by the load generator.

const wrkScript = `wrk.method = "POST"
wrk.body = "hello\n"
wrk.headers["Content-Type"] = "text/plain"
`

type wrkLoader struct{ script string }

func newWrk(dir string) (*wrkLoader, bool) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return nil, false
	}
	p := filepath.Join(dir, "post.lua")
	if err := os.WriteFile(p, []byte(wrkScript), 0o644); err != nil {
		return nil, false
	}
	return &wrkLoader{script: p}, true
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkReqs    = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func (w *wrkLoader) run(url string, conc int, dur time.Duration) (loadResult, error) {
	secs := max(1, int(dur.Round(time.Second)/time.Second))
	out, err := exec.Command("wrk", "-t1", "-c"+strconv.Itoa(conc), "-d"+strconv.Itoa(secs)+"s",
		"--latency", "-s", w.script, url).CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	var r loadResult
	if m := wrkRPS.FindStringSubmatch(s); m != nil {
		r.RPS, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := wrkReqs.FindStringSubmatch(s); m != nil {
		r.Requests, _ = strconv.Atoi(m[1])
		r.Elapsed = parseWrkDur(m[2], m[3])
	}
	for _, m := range wrkPct.FindAllStringSubmatch(s, -1) {
		d := parseWrkDur(m[2], m[3])
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Errors += n
	}
	if m := wrkSockErr.FindStringSubmatch(s); m != nil {
		for _, v := range m[1:] {
			n, _ := strconv.Atoi(v)
			r.Errors += n
		}
	}
	if r.Requests == 0 || r.P50 == 0 {
		return r, fmt.Errorf("wrk output not understood:\n%s", s)
	}
	return r, nil
}

func parseWrkDur(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch strings.TrimSpace(unit) {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	case "m":
		return time.Duration(f * float64(time.Minute))
	}
	return time.Duration(f * float64(time.Second))
}
