package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestAsyncLedgerUnderFailures keeps a ledger of every call answered 202
// through the built binary while the function fails k times, fails every
// time, has its instance killed mid-request, and outlives its maximum event
// age. Each call must end executed or dead-lettered, for the reason
// expected; duplicates are counted and reported.
func TestAsyncLedgerUnderFailures(t *testing.T) {
	data := dataDir(t)
	n := start(t, data)
	dir, record := ledgerFunction(t, "ledger", "scale:\n  max: 1\n  maxConcurrency: 32\nasync:\n  maxRetries: 3\n  backoff: 50ms\n")
	n.mustCLI("deploy", dir)
	edir, _ := ledgerFunction(t, "expiring", "async:\n  maxRetries: 10\n  backoff: 400ms\n  maxEventAge: 1s\n")
	n.mustCLI("deploy", edir)

	var mu sync.Mutex
	kinds := map[string]string{} // call id → what it was sent as
	send := func(path, kind string, count int) {
		for i := range count {
			code, _, hdr := n.invoke("POST", path, "x", "X-Call-Id", fmt.Sprintf("%s-%d", kind, i))
			id := hdr.Get("X-Call-Id")
			if code != 202 {
				t.Fatalf("%s: %d", path, code)
			}
			mu.Lock()
			kinds[id] = kind
			mu.Unlock()
		}
	}
	send("/async-function/ledger/flaky?k=2", "fails-twice", 20) // attempt 3 succeeds
	send("/async-function/ledger/flaky?k=9", "fails-always", 5) // 4 attempts, then a dead letter
	send("/async-function/expiring/fail", "expires", 5)         // past 1s of age before its attempts run out
	send("/async-function/ledger/record?ms=1500", "killed", 20) // in flight when the instance is killed
	waitUntil(t, "the slow calls to be in flight", 10*time.Second, func() bool { return len(instancePIDs(t, data)) > 0 })
	time.Sleep(500 * time.Millisecond)
	for _, pid := range instancePIDs(t, data) {
		syscall.Kill(pid, syscall.SIGKILL) // the instance dies mid-request
	}

	type dead struct {
		CallID, Error string
		Attempts      int
	}
	var deadList []dead
	waitUntil(t, "every accepted call executed or dead-lettered", 90*time.Second, func() bool {
		out, _, code := n.cli("dlq", "list", "-o", "json")
		if code != 0 || json.Unmarshal([]byte(out), &deadList) != nil {
			return false
		}
		ran := executed(record)
		isDead := map[string]bool{}
		for _, d := range deadList {
			isDead[d.CallID] = true
		}
		for id := range kinds {
			if ran[id] == 0 && !isDead[id] {
				return false
			}
		}
		return true
	})
	ran := executed(record)
	dups := 0
	for id, kind := range kinds {
		if ran[id] > 1 {
			dups += ran[id] - 1
		}
		switch kind {
		case "fails-twice", "killed":
			if ran[id] == 0 {
				t.Errorf("%s (%s) was dead-lettered, not executed", id, kind)
			}
		}
	}
	raw, _ := os.ReadFile(record)
	retriedAfterKill := 0
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		a, _ := strconv.Atoi(f[1])
		switch kinds[f[0]] {
		case "fails-twice":
			if a < 3 {
				t.Errorf("%s succeeded on attempt %d; it fails its first two", f[0], a)
			}
		case "killed":
			if a >= 2 {
				retriedAfterKill++
			}
		}
	}
	if retriedAfterKill == 0 {
		t.Error("no call was in flight when the instance was killed: the test did not test that")
	}
	for _, d := range deadList {
		switch kinds[d.CallID] {
		case "fails-always":
			if d.Attempts != 4 {
				t.Errorf("%s: %d attempts, want 4 (1 + maxRetries 3)", d.CallID, d.Attempts)
			}
		case "expires":
			if !strings.Contains(d.Error, "maximum event age") {
				t.Errorf("%s: dead-lettered for %q, want the maximum event age", d.CallID, d.Error)
			}
		default:
			t.Errorf("%s (%s) was dead-lettered: %s", d.CallID, kinds[d.CallID], d.Error)
		}
	}
	if len(deadList) != 10 {
		t.Errorf("want 10 dead letters (5 failing always, 5 expired), got %d", len(deadList))
	}
	t.Logf("ledger: %d accepted, 0 lost; %d executed (%d of them retried after the kill), %d dead-lettered, %d duplicate executions",
		len(kinds), len(kinds)-len(deadList), retriedAfterKill, len(deadList), dups)
}
