package watchdog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is what `nimbus watchdog` is told.
type Config struct {
	Listen       string   // e.g. 0.0.0.0:8080
	Protocol     string   // "http" or "stdio"
	Command      []string // the program and its arguments
	UpstreamPort int      // http: the port the program is given as PORT
	HealthPath   string   // http: probed on the program until it answers
	// Drain bounds how long requests in flight may take to finish once
	// the watchdog is told to stop (default 10s): a function's timeout,
	// so that a rollout does not cut its longest requests.
	Drain  time.Duration
	Stdout io.Writer
	Stderr io.Writer
}

// HealthPath is the watchdog's own readiness path, as OpenFaaS's watchdogs
// serve it: 200 once the function can take requests, 503 before.
const HealthPath = "/_/health"

// Serve runs the watchdog until ctx ends (then it stops the program and
// drains) or, in http mode, until the program exits (then it returns its
// exit error).
func Serve(ctx context.Context, cfg Config) error {
	if len(cfg.Command) == 0 {
		return errors.New("watchdog: no command: give the program after --, e.g. nimbus watchdog -- ./handler")
	}
	path, err := exec.LookPath(cfg.Command[0])
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	var handler http.Handler
	var exited <-chan error
	switch cfg.Protocol {
	case "stdio":
		rt := &Stdio{Path: path, Args: cfg.Command, Env: os.Environ(), Kill: ctx,
			Log: func(_, line string) { fmt.Fprintln(cfg.Stderr, line) }}
		handler = stdioHandler(rt)
	case "http", "":
		f, err := startFront(ctx, path, cfg)
		if err != nil {
			return err
		}
		handler, exited = f, f.exited
	default:
		return fmt.Errorf("watchdog: protocol %q: use http or stdio", cfg.Protocol)
	}
	srv := &http.Server{Addr: cfg.Listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("watchdog: listen on %s: %w", cfg.Listen, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-exited:
		if runErr == nil {
			runErr = errors.New("the function's program exited")
		}
	case runErr = <-serveErr:
	}
	drain := cfg.Drain
	if drain <= 0 {
		drain = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	srv.Shutdown(sctx)
	if exited != nil && ctx.Err() != nil {
		// The program got SIGTERM with ctx; let it finish its work and exit.
		select {
		case <-exited:
		case <-sctx.Done():
		}
	}
	return runErr
}

// stdioHandler serves each request by running the program once.
func stdioHandler(rt *Stdio) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == HealthPath {
			w.WriteHeader(http.StatusOK)
			return
		}
		resp, err := rt.RoundTrip(r)
		if err != nil {
			http.Error(w, "function failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
}

// front keeps an http program running and proxies to it.
type front struct {
	proxy  *httputil.ReverseProxy
	ready  chan struct{}
	exited chan error
}

func startFront(ctx context.Context, path string, cfg Config) (*front, error) {
	port := cfg.UpstreamPort
	if port == 0 {
		port = 8081
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(path, cfg.Command[1:]...)
	cmd.Args[0] = cfg.Command[0]
	cmd.Env = append(withoutPort(os.Environ()), "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("watchdog: start %s: %w", cfg.Command[0], err)
	}
	f := &front{ready: make(chan struct{}), exited: make(chan error, 1)}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", addr
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true},
	}
	go func() { f.exited <- cmd.Wait() }()
	go func() { // forward SIGTERM: the program finishes its work and exits
		<-ctx.Done()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}()
	health := cfg.HealthPath
	if health == "" {
		health = "/"
	}
	go func() {
		if WaitReady(ctx, addr, health, nil) == nil {
			close(f.ready)
		}
	}()
	return f, nil
}

func withoutPort(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PORT=") {
			out = append(out, kv)
		}
	}
	return out
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-f.ready:
	default:
		if r.URL.Path == HealthPath {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		select { // hold requests until the program is ready
		case <-f.ready:
		case <-r.Context().Done():
			return
		}
	}
	if r.URL.Path == HealthPath {
		w.WriteHeader(http.StatusOK)
		return
	}
	f.proxy.ServeHTTP(w, r)
}
