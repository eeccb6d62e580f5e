package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/driver/drivertest"
)

// ledgerFunction makes a function directory around testfn whose /record
// appends each call id it runs to a file the test reads.
func ledgerFunction(t *testing.T, name, extra string) (dir, record string) {
	t.Helper()
	bin := drivertest.TestBinary(t)
	dir = filepath.Join(t.TempDir(), name)
	os.MkdirAll(dir, 0o755)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "testfn"), b, 0o755)
	// Writable by the unprivileged function user.
	recDir, err := os.MkdirTemp("", "nimbus-ledger-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(recDir, 0o777)
	t.Cleanup(func() { os.RemoveAll(recDir) })
	record = filepath.Join(recDir, "record.log")
	os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte("name: "+name+"\ncommand: ./testfn\nenv:\n  RECORD_FILE: "+record+"\n"+extra), 0o644)
	return dir, record
}

// executed reads the record file: how many times each call id ran.
func executed(record string) map[string]int {
	b, _ := os.ReadFile(record)
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			out[f[0]]++
		}
	}
	return out
}

// TestAsyncThroughBinaryAndDLQ: async calls through the built binary, and a
// failing one handled with `nimbus dlq`.
func TestAsyncThroughBinaryAndDLQ(t *testing.T) {
	n := start(t, dataDir(t))
	dir, record := ledgerFunction(t, "ledger", "async:\n  maxRetries: 1\n  backoff: 20ms\n")
	n.mustCLI("deploy", dir)
	// A caller's X-Call-Id is its correlation id; the call id is nimbus's.
	code, _, hdr := n.invoke("POST", "/async-function/ledger/record", "x", "X-Call-Id", "my-own-id")
	first := hdr.Get("X-Call-Id")
	if code != 202 || first == "" || first == "my-own-id" {
		t.Fatalf("enqueue: %d %v", code, hdr)
	}
	waitUntil(t, "execution", 15*time.Second, func() bool { return executed(record)[first] == 1 })
	if out := n.mustCLI("calls", "get", first, "-o", "json"); !strings.Contains(out, `"correlationId": "my-own-id"`) {
		t.Fatalf("the record does not carry the correlation id:\n%s", out)
	}
	_, _, hdr = n.invoke("POST", "/async-function/ledger/fail", "doomed")
	id := hdr.Get("X-Call-Id")
	waitUntil(t, "a dead letter", 15*time.Second, func() bool {
		out, _, code := n.cli("dlq", "list")
		return code == 0 && strings.Contains(out, id)
	})
	show := n.mustCLI("dlq", "show", id)
	if !strings.Contains(show, "Attempts:      2") || !strings.Contains(show, "always failing") {
		t.Fatalf("dlq show:\n%s", show)
	}
	n.mustCLI("dlq", "purge", id)
	if out := n.mustCLI("dlq", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("after purge: %s", out)
	}
	if _, errOut, code := n.cli("dlq", "show", id); code != 1 || !strings.Contains(errOut, "no dead letter") {
		t.Fatalf("show of a purged one: %d %q", code, errOut)
	}
}

// TestAsyncNothingLostOnKill9 keeps a ledger of every call answered 202
// while nimbus is killed with SIGKILL mid-load and restarted: twice by
// default, NIMBUS_KILL9_CYCLES times when set (the slow run). Each must end
// executed or dead-lettered; duplicates (at-least-once) are counted and
// reported, not hidden.
func TestAsyncNothingLostOnKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the kill -9 ledger test")
	}
	data := dataDir(t)
	n := start(t, data, "--async-ack-wait", "3s")
	dir, record := ledgerFunction(t, "ledger", "scale:\n  max: 2\n  maxConcurrency: 8\n")
	n.mustCLI("deploy", dir)

	var mu sync.Mutex
	accepted := map[string]bool{}
	refused := 0
	send := func(url string, count int) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				client := &http.Client{Timeout: 5 * time.Second}
				for i := range count / 8 {
					req, _ := http.NewRequest("POST", url+"/async-function/ledger/record", strings.NewReader(fmt.Sprint(w, i)))
					resp, err := client.Do(req)
					mu.Lock()
					if err == nil && resp.StatusCode == 202 {
						accepted[resp.Header.Get("X-Call-Id")] = true
					} else {
						refused++
					}
					mu.Unlock()
					if err == nil {
						resp.Body.Close()
					}
				}
			})
		}
		wg.Wait()
	}
	cycles := 2
	if v, err := strconv.Atoi(os.Getenv("NIMBUS_KILL9_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	for cycle := range cycles {
		done := make(chan struct{})
		url := n.URL
		go func() { send(url, 400); close(done) }()
		time.Sleep(150 * time.Millisecond) // mid-load
		n.cmd.Process.Kill()
		<-n.exited
		<-done
		n.launch("--async-ack-wait", "3s")
		t.Logf("cycle %d: %d accepted so far, %d refused while nimbus was down", cycle, len(accepted), refused)
	}
	send(n.URL, 80) // and some on the last run
	if len(accepted) < 100 {
		t.Fatalf("only %d calls were accepted: the load did not run", len(accepted))
	}
	var missing []string
	waitUntil(t, "every accepted call executed or dead-lettered", 60*time.Second, func() bool {
		ran := executed(record)
		dead := deadLetters(t, n)
		missing = missing[:0]
		for id := range accepted {
			if ran[id] == 0 && !dead[id] {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	dups := 0
	for id, k := range executed(record) {
		if accepted[id] && k > 1 {
			dups += k - 1
		}
	}
	// Every call that ran has a final record: none stays "queued" after
	// the crashes (a call is settled only once its record is stored).
	token := strings.TrimSpace(readFile(t, data+"/admin-token"))
	var notFinal []string
	waitUntil(t, "a final record of every accepted call", 30*time.Second, func() bool {
		notFinal = notFinal[:0]
		for id := range accepted {
			code, body, _ := n.invoke("GET", "/v1/calls/"+id, "", "Authorization", "Bearer "+token)
			var rec struct{ State string }
			json.Unmarshal([]byte(body), &rec)
			if code != 200 || (rec.State != "done" && rec.State != "dead-lettered") {
				notFinal = append(notFinal, id+":"+rec.State)
			}
		}
		return len(notFinal) == 0
	})
	t.Logf("ledger: %d accepted, 0 lost, %d duplicate executions (at-least-once delivery), every record final", len(accepted), dups)
}

func deadLetters(t *testing.T, n *nimbus) map[string]bool {
	out, _, code := n.cli("dlq", "list", "-o", "json")
	ids := map[string]bool{}
	if code != 0 {
		return ids
	}
	var list []struct{ CallID string }
	json.Unmarshal([]byte(out), &list)
	for _, d := range list {
		ids[d.CallID] = true
	}
	return ids
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
