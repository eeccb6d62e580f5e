// Package server wires nimbus together: it is the one place that picks
// backends (embedded or external NATS, the process driver) and hands them to
// the components, then serves HTTP until its context ends.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"nimbus/internal/apiserver"
	"nimbus/internal/async"
	"nimbus/internal/backbone"
	"nimbus/internal/calls"
	"nimbus/internal/calls/natscalls"
	"nimbus/internal/controller"
	"nimbus/internal/driver"
	"nimbus/internal/driver/docker"
	"nimbus/internal/driver/process"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/outbound"
	"nimbus/internal/queue/natsqueue"
	"nimbus/internal/store"
	"nimbus/internal/store/natsstore"
	"nimbus/internal/trigger"
	"nimbus/internal/trigger/nattrigger"
)

// Config is everything `nimbus up` can be told.
type Config struct {
	Listen          string         // HTTP address, e.g. 127.0.0.1:8080
	DataDir         string         // state: JetStream files, admin token, instance records
	NATSURL         string         // external NATS; empty embeds one
	NATSListen      string         // let TCP clients reach the embedded NATS here
	MaxBodyBytes    int64          // invocation body limit
	MaxHeaderBytes  int            // request header limit (431 beyond)
	ShutdownTimeout time.Duration  // bound on draining in-flight requests
	RunAs           string         // user functions run as (default: nobody when root)
	AsyncAckWait    time.Duration  // redelivery of an async invocation whose worker vanished
	AllowOutbound   []netip.Prefix // ranges callbacks and outside endpoints may reach despite the SSRF guard
	CallRetention   time.Duration  // how long call records are kept (default 24h)
	MaxCallRecords  int            // how many call records are kept for lookup (default 100,000)
	Version         string
	Logger          *slog.Logger
}

// Started tells the caller where nimbus listens, once it does.
type Started struct {
	URL       string
	TokenPath string
	NewToken  string // the token, only on the start that created it
	Docker    string // whether runtime docker is on, and why
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Run serves until ctx ends, then shuts down gracefully: stop accepting,
// finish in-flight requests (bounded by ShutdownTimeout), stop instances.
func Run(ctx context.Context, cfg Config, started func(Started)) error {
	cfg.defaults()
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	token, newToken, err := adminToken(cfg.DataDir)
	if err != nil {
		return err
	}

	bb, err := backbone.Open(ctx, backbone.Config{URL: cfg.NATSURL, Dir: filepath.Join(cfg.DataDir, "jetstream"), Listen: cfg.NATSListen})
	if err != nil {
		return err
	}
	defer bb.Close()
	st, err := natsstore.Open(ctx, bb.Conn, bb.JS, natsstore.Options{})
	if err != nil {
		return err
	}

	proc, err := process.New(process.Options{StateDir: filepath.Join(cfg.DataDir, "instances"), RunAs: cfg.RunAs})
	if err != nil {
		return err
	}
	if err := proc.Reap(ctx); err != nil {
		log.Warn("could not reap instances of an earlier run", "err", err)
	}
	drivers := map[string]driver.Driver{proc.Name(): proc}
	prepare := map[string]func(context.Context, function.Function) error{}
	dockerNote := ""
	owner, err := ownerID(cfg.DataDir)
	if err != nil {
		return err
	}
	if dk, err := docker.New(ctx, docker.Options{Owner: owner}); err != nil {
		dockerNote = fmt.Sprintf("docker off (%v): start dockerd or set DOCKER_HOST, then restart", err)
		log.Info("runtime docker is off: no Docker engine answers; start dockerd or set DOCKER_HOST, then restart nimbus", "err", err)
	} else {
		defer dk.Close(context.Background())
		if err := dk.Reap(ctx); err != nil {
			log.Warn("could not remove containers of an earlier run", "err", err)
		}
		drivers[dk.Name()] = dk
		prepare[dk.Name()] = dk.Prepare
		dockerNote = "docker (engine at " + dk.Host() + ")"
		log.Info("runtime docker is on", "engine", dk.Host())
	}
	runtimes := map[string]bool{}
	for name := range drivers {
		runtimes[name] = true
	}

	// Call records: written in batches off the request path, read from an
	// index that follows the stream (so it holds every gateway's records).
	if cfg.CallRetention == 0 {
		cfg.CallRetention = 24 * time.Hour
	}
	if cfg.MaxCallRecords == 0 {
		cfg.MaxCallRecords = 100_000
	}
	callStream, err := natscalls.Open(ctx, bb.JS, natscalls.Options{MaxAge: cfg.CallRetention})
	if err != nil {
		proc.Close(context.Background())
		return err
	}
	recorder := calls.NewRecorder(callStream, calls.RecorderOptions{Logger: log})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		recorder.Close(ctx)
	}()
	callIndex := calls.NewIndex(cfg.MaxCallRecords, cfg.CallRetention)
	followCtx, stopFollow := context.WithCancel(context.Background())
	defer stopFollow()
	go func() {
		for followCtx.Err() == nil {
			err := callStream.Follow(followCtx, func(b []calls.Record) { callIndex.Add(b, time.Now()) })
			if err != nil && followCtx.Err() == nil {
				log.Warn("following call records failed; retrying", "err", err)
				time.Sleep(time.Second)
			}
		}
	}()
	guard := outbound.NewGuard(cfg.AllowOutbound)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "nimbus_call_records_dropped_total",
		Help: "Call records dropped because the backbone fell behind (calls are never slowed for their records).",
	}, func() float64 { return float64(recorder.Dropped()) }))
	gw := gateway.New(gateway.Options{
		OnCall:       recorder.Record,
		Drivers:      drivers,
		OpenPackage:  st.OpenPackage,
		SecretValue:  st.SecretValue,
		Log:          func(l store.LogLine) { st.AppendLog(context.Background(), l) },
		Metrics:      gateway.NewMetrics(reg),
		MaxBodyBytes: cfg.MaxBodyBytes,
		Logger:       log,
	})

	if cfg.AsyncAckWait == 0 {
		cfg.AsyncAckWait = 30 * time.Second
	}
	q, err := natsqueue.Open(ctx, bb.JS, natsqueue.Options{AckWait: cfg.AsyncAckWait})
	if err != nil {
		gw.Close(context.Background())
		proc.Close(context.Background())
		return err
	}
	triggers, err := nattrigger.Open(ctx, bb.JS, 1)
	if err != nil {
		gw.Close(context.Background())
		proc.Close(context.Background())
		return err
	}
	disp := &async.Dispatcher{Queue: q, Invoke: gw, Spec: gw.Spec, Logger: log, Heartbeat: cfg.AsyncAckWait / 3,
		Record: recorder.Record, Callbacks: guard.Client(30 * time.Second)}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	synced := make(chan struct{})
	ctl := &controller.Controller{Store: st, Target: controller.Targets{gw, disp}, Logger: log}
	var wg sync.WaitGroup
	wg.Go(func() { ctl.Run(runCtx, synced) })
	select {
	case <-synced:
		sched := &trigger.Scheduler{Store: triggers, Queue: q, Spec: gw.Spec, Record: recorder.Record, Logger: log}
		wg.Go(func() { sched.Run(runCtx) })
	case <-ctx.Done():
		stopRun()
		wg.Wait()
		disp.Close()
		gw.Close(context.Background())
		proc.Close(context.Background())
		return nil
	}

	api := apiserver.New(apiserver.Options{
		Store: st, Invoker: gw, Token: token, Runtimes: runtimes, Prepare: prepare, Version: cfg.Version,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Ready:   st.Ping,
		Queue:   q,
		Async: &async.Handler{Queue: q, Spec: gw.Spec, MaxBodyBytes: cfg.MaxBodyBytes,
			CheckCallback: guard.CheckURL, Record: recorder.Record},
		Calls:    callIndex,
		Triggers: triggers,
		Logger:   log,
	})
	srv := &http.Server{
		Handler:           limitHeaders(api, cfg.MaxHeaderBytes),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		stopRun()
		wg.Wait()
		disp.Close()
		gw.Close(context.Background())
		proc.Close(context.Background())
		return fmt.Errorf("listen on %s: %w (use --listen to pick another address)", cfg.Listen, err)
	}
	url := "http://" + ln.Addr().String()
	if err := os.WriteFile(filepath.Join(cfg.DataDir, URLFile), []byte(url+"\n"), 0o600); err != nil {
		log.Warn("cannot record the URL in the data dir", "err", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if started != nil {
		s := Started{URL: url, TokenPath: filepath.Join(cfg.DataDir, TokenFile), Docker: dockerNote}
		if newToken {
			s.NewToken = token
		}
		started(s)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = err
		}
	}
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("in-flight requests did not finish in time", "err", err)
		srv.Close()
	}
	stopRun()
	wg.Wait()
	disp.Close() // deliveries in progress finish; unsettled messages stay queued
	gw.Close(sctx)
	proc.Close(sctx)
	os.Remove(filepath.Join(cfg.DataDir, URLFile))
	log.Info("stopped")
	return runErr
}
