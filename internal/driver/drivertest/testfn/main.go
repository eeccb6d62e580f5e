// Command testfn is the program the driver conformance suite runs. With PORT
// set it serves HTTP; with the argument "stdio" it handles one request on
// stdin and stdout.
//
// HTTP paths: / echoes the body; /env prints the environment; /crash exits 3;
// /sleep?ms=N sleeps; /whoami prints the uid; /stream writes three chunks
// 200ms apart; /headers[/...] prints the request line and headers. At start
// it prints "started" on stdout and "warming" on stderr. With the argument
// "fail" it exits at once. /secret?name=N prints $NIMBUS_SECRETS_DIR/N.
// /flaky?k=N answers 500 to the first N tries of each X-Call-Id, then prints
// "done ID attempt A" (and echoes the body with ?echo=1); /fail always answers 500; /record appends
// "CALL-ID ATTEMPT" to $RECORD_FILE (after sleeping ?ms=N), as /flaky does
// when it succeeds. A CloudEvent (binary mode) on / is
// answered in the Event Gateway's sync shape {statusCode: 200, headers:
// {X-Event-Type, X-Event-Id}, body: the event's data}, and recorded as "ce
// TYPE ID CALL-ID ATTEMPT" in $RECORD_FILE when that is set; a structured
// one (application/cloudevents+json: 1.0, or the Event Gateway's 0.1) is
// echoed and recorded as "cejson TYPE ID VERSION".
// /pid prints its pid; /where its working directory, secrets directory and
// TMPDIR; /probe tries to read, list or write a path or kill a pid (see
// probe); /spawn starts "sleep 300" in a session of its own and prints its
// pid. stdio: the body "fail" makes it write to stderr and exit 3; "env" prints
// the environment; anything else is echoed. TERM_DELAY=D makes it take D to
// stop after SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "fail" {
		fmt.Fprintln(os.Stderr, "testfn: refusing to start")
		os.Exit(2)
	}
	if len(os.Args) > 1 && os.Args[1] == "stdio" {
		stdio()
		return
	}
	fmt.Println("started")
	fmt.Fprintln(os.Stderr, "warming")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // HTTP/1 handlers must read the body before answering
		if typ := r.Header.Get("Ce-Type"); typ != "" && r.Header.Get("Ce-Specversion") != "" {
			if rec := os.Getenv("RECORD_FILE"); rec != "" {
				if f, err := os.OpenFile(rec, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666); err == nil {
					fmt.Fprintf(f, "ce %s %s %s %s\n", typ, r.Header.Get("Ce-Id"), r.Header.Get("X-Call-Id"), r.Header.Get("X-Nimbus-Attempt"))
					f.Close()
				}
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"statusCode": 200,
				"headers": map[string]string{"X-Event-Type": typ, "X-Event-Id": r.Header.Get("Ce-Id")}, "body": string(b)})
			return
		}
		if r.Header.Get("Content-Type") == "application/cloudevents+json" {
			// A structured CloudEvent (1.0) or the Event Gateway's
			// envelope (0.1): recorded as "cejson TYPE ID VERSION".
			var ev struct{ Type, ID, Specversion, EventType, EventID, CloudEventsVersion string }
			if json.Unmarshal(b, &ev) == nil {
				if rec := os.Getenv("RECORD_FILE"); rec != "" {
					if f, err := os.OpenFile(rec, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666); err == nil {
						fmt.Fprintf(f, "cejson %s %s %s\n", ev.Type+ev.EventType, ev.ID+ev.EventID, ev.Specversion+ev.CloudEventsVersion)
						f.Close()
					}
				}
			}
		}
		w.Header().Set("X-Testfn", "1")
		w.Write(b)
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) { printEnv(w) })
	mux.HandleFunc("/secret", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join(os.Getenv("NIMBUS_SECRETS_DIR"), r.URL.Query().Get("name")))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	var mu sync.Mutex
	tries := map[string]int{}
	mux.HandleFunc("/flaky", func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(r.URL.Query().Get("k"))
		mu.Lock()
		tries[r.Header.Get("X-Call-Id")]++
		n := tries[r.Header.Get("X-Call-Id")]
		mu.Unlock()
		if n <= k {
			http.Error(w, fmt.Sprintf("failing try %d of %d", n, k), http.StatusInternalServerError)
			return
		}
		fmt.Printf("done %s attempt %s\n", r.Header.Get("X-Call-Id"), r.Header.Get("X-Nimbus-Attempt"))
		if rec := os.Getenv("RECORD_FILE"); rec != "" {
			appendRecord(rec, r)
		}
		if r.URL.Query().Get("echo") != "" {
			io.Copy(w, r.Body)
		}
	})
	mux.HandleFunc("/record", func(w http.ResponseWriter, r *http.Request) {
		if ms, _ := strconv.Atoi(r.URL.Query().Get("ms")); ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond) // a window to be killed in
		}
		if err := appendRecord(os.Getenv("RECORD_FILE"), r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "always failing", http.StatusInternalServerError)
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getuid()) })
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getpid()) })
	mux.HandleFunc("/where", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		fmt.Fprintf(w, "%s\n%s\n%s\n", cwd, os.Getenv("NIMBUS_SECRETS_DIR"), os.Getenv("TMPDIR"))
	})
	mux.HandleFunc("/probe", probe)
	mux.HandleFunc("/spawn", func(w http.ResponseWriter, r *http.Request) {
		// A child that leaves the process group and session, as a daemon
		// would: only a cgroup still holds it.
		cmd := exec.Command("sleep", "300")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		go cmd.Wait()
		fmt.Fprint(w, cmd.Process.Pid)
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) { os.Exit(3) })
	mux.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Println(string(b))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(200 * time.Millisecond)
		}
	})
	mux.HandleFunc("/headers/", headers)
	mux.HandleFunc("/headers", headers)
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			fmt.Fprint(w, "slept")
		case <-r.Context().Done():
		}
	})
	// /spin?ms=N burns N ms of CPU time (for scaling on CPU): it counts the
	// process's own CPU, so a busy machine makes it take longer, not less.
	mux.HandleFunc("/spin", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		cpu := func() time.Duration {
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		end, n := cpu()+time.Duration(ms)*time.Millisecond, 0
		for cpu() < end {
			for range 10000 {
				n++
			}
		}
		fmt.Fprint(w, n)
	})
	srv := &http.Server{Addr: "127.0.0.1:" + os.Getenv("PORT"), Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		fmt.Println("stopping")
		if d, err := time.ParseDuration(os.Getenv("TERM_DELAY")); err == nil {
			time.Sleep(d) // a function slow to stop
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func stdio() {
	b, _ := io.ReadAll(os.Stdin)
	switch strings.TrimSpace(string(b)) {
	case "fail":
		fmt.Println("partial output")
		fmt.Fprintln(os.Stderr, "testfn: asked to fail")
		os.Exit(3)
	case "env":
		printEnv(os.Stdout)
	default:
		os.Stdout.Write(b)
	}
}

func printEnv(w io.Writer) {
	env := os.Environ()
	sort.Strings(env)
	for _, kv := range env {
		fmt.Fprintln(w, kv)
	}
}

func headers(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s %s %s\n", r.Method, r.URL.RequestURI(), r.Host)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %s\n", k, strings.Join(r.Header[k], ","))
	}
}

// probe tries what one function must not do to another: ?op=read&path=P,
// ?op=write&path=P, ?op=signal&pid=N (SIGKILL). It answers "ok" or the
// error.
func probe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var err error
	switch q.Get("op") {
	case "read":
		_, err = os.ReadFile(q.Get("path"))
	case "list":
		_, err = os.ReadDir(q.Get("path"))
	case "write":
		err = os.WriteFile(q.Get("path"), []byte("written by another function\n"), 0o644)
	case "signal":
		pid, _ := strconv.Atoi(q.Get("pid"))
		err = syscall.Kill(pid, syscall.SIGKILL)
	case "rename":
		err = os.Rename(q.Get("path"), q.Get("to"))
	case "symlink":
		err = os.Symlink(q.Get("to"), q.Get("path"))
	default:
		err = fmt.Errorf("unknown op %q", q.Get("op"))
	}
	if err != nil {
		fmt.Fprint(w, err)
		return
	}
	fmt.Fprint(w, "ok")
}

// appendRecord appends "CALL-ID ATTEMPT" to the file rec.
func appendRecord(rec string, r *http.Request) error {
	if u := os.Getenv("RECORD_URL"); u != "" {
		// A record kept outside the instance (a pod's test): the call
		// counts as executed once the sink has it.
		req, _ := http.NewRequest("POST", u, strings.NewReader(r.Header.Get("X-Call-Id")+" "+r.Header.Get("X-Nimbus-Attempt")))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("the record sink answered %s", resp.Status)
		}
		return nil
	}
	f, err := os.OpenFile(rec, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s %s\n", r.Header.Get("X-Call-Id"), r.Header.Get("X-Nimbus-Attempt"))
	return err
}
