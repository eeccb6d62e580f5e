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
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"nimbus/internal/apiserver"
	"nimbus/internal/archive"
	"nimbus/internal/async"
	"nimbus/internal/backbone"
	"nimbus/internal/controller"
	"nimbus/internal/driver/process"
	"nimbus/internal/events"
	"nimbus/internal/events/natsevents"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/lambdaapi"
	"nimbus/internal/lambdaclient"
	"nimbus/internal/outbound"
	"nimbus/internal/provider"
	"nimbus/internal/queue/natsqueue"
	"nimbus/internal/scaler"
	"nimbus/internal/scaler/natscluster"
	"nimbus/internal/store"
	"nimbus/internal/store/natsstore"
	"nimbus/internal/trigger"
	"nimbus/internal/trigger/nattrigger"
	"nimbus/internal/ui"
	"nimbus/internal/versions"
)

// Config is everything `nimbus up` can be told.
type Config struct {
	Listen           string           // HTTP address, e.g. 127.0.0.1:8080
	DataDir          string           // state: JetStream files, admin token, instance records
	NATSURL          string           // external NATS; empty embeds one
	NATSListen       string           // let TCP clients reach the embedded NATS here
	NATSReplicas     int              // copies of every stream and bucket (default 1; 3 on a NATS cluster)
	AdminTokenFile   string           // read the admin token from this file (a mounted Secret) instead of the data dir's
	MaxBodyBytes     int64            // invocation body limit
	MaxHeaderBytes   int              // request header limit (431 beyond)
	BodyReadTimeout  time.Duration    // how long a request body may take to arrive (408 beyond; default 5m)
	ShutdownTimeout  time.Duration    // bound on draining in-flight requests
	RunAs            string           // the one user every function runs as (default: a user per function when root)
	FunctionUIDs     process.UIDRange // the user ids functions get, one each (default 700000-799999)
	PackageLimits    archive.Limits   // what one package may unpack to (checked at upload)
	MaxUnpackedBytes int64            // all unpacked packages together
	AsyncAckWait     time.Duration    // redelivery of an async invocation whose worker vanished
	AllowOutbound    []netip.Prefix   // ranges callbacks and outside endpoints may reach despite the SSRF guard
	CallRetention    time.Duration    // how long call records are kept (default 24h)
	MaxCallRecords   int              // how many call records are kept for lookup (default 100,000)
	EventsListen     string           // the Event Gateway events API address (default 127.0.0.1:4000; "off" for none)
	MetricsAuth      bool             // /metrics needs the admin token
	LambdaEndpoint   string           // the Lambda Invoke endpoint of awslambda event functions ("" nimbus's own)
	Kubeconfig       string           // the kube runtime's cluster: a kubeconfig file ("" in-cluster config when in a pod, else no kube runtime)
	KubeNamespace    string           // the namespace kube functions' Deployments go in (default openfaas-fn)
	Provider         string           // the runtime of functions that name none: docker (default; packages run as processes) or kube (images and packages)
	KubeAPIURL       string           // the nimbus API as the kube functions' pods reach it, to fetch packages ("" packages do not run on kube)
	KubeRuntimeImage string           // the image kube runs packages in (go run ./deploy/images -image runtime builds it)
	Version          string
	Logger           *slog.Logger
}

// Started tells the caller where nimbus listens, once it does.
type Started struct {
	URL       string
	TokenPath string
	NewToken  string // the token, only on the start that created it
	Docker    string // whether runtime docker is on, and why
	Kube      string // runtime kube's cluster and namespace, if it is on
	Isolation string // how process functions are kept apart
	EventsURL string // the events API, if on
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = 5 * time.Minute
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.EventsListen == "" {
		c.EventsListen = "127.0.0.1:4000"
	}
	if c.CallRetention == 0 {
		c.CallRetention = 24 * time.Hour
	}
	if c.MaxCallRecords == 0 {
		c.MaxCallRecords = 100_000
	}
	if c.AsyncAckWait == 0 {
		c.AsyncAckWait = 30 * time.Second
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
	if e := cfg.LambdaEndpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--lambda-endpoint %q is not an http or https URL (such as https://lambda.us-east-1.amazonaws.com)", e)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	var token string
	var newToken bool
	if cfg.AdminTokenFile != "" {
		token, err = tokenFromFile(cfg.AdminTokenFile)
	} else {
		token, newToken, err = adminToken(cfg.DataDir)
	}
	if err != nil {
		return err
	}

	// down stops, in reverse order, what was started; on a clean shutdown
	// it runs bounded by ShutdownTimeout after the listeners have drained.
	var down shutdown
	stopCtx, stopped := context.Background(), func() {}
	defer func() {
		down.run(stopCtx)
		stopped()
	}()

	bb, err := backbone.Open(ctx, backbone.Config{URL: cfg.NATSURL, Dir: filepath.Join(cfg.DataDir, "jetstream"), Listen: cfg.NATSListen, Replicas: cfg.NATSReplicas})
	if err != nil {
		return err
	}
	down.push(func(context.Context) { bb.Close() })
	disk := &space{dir: cfg.DataDir, log: log}
	replicas := max(cfg.NATSReplicas, 1)
	st, err := natsstore.Open(ctx, bb.Conn, bb.JS, natsstore.Options{Replicas: replicas})
	if err != nil {
		return err
	}
	rt, err := openRuntimes(ctx, cfg, &down)
	if err != nil {
		return err
	}
	rec, err := openCalls(ctx, cfg, bb, disk, &down)
	if err != nil {
		return err
	}
	guard := outbound.NewGuard(cfg.AllowOutbound)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "nimbus_call_records_dropped_total",
		Help: "Call records dropped because the backbone fell behind (calls are never slowed for their records).",
	}, func() float64 { return float64(rec.recorder.Dropped()) }))
	droppedLogs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nimbus_log_lines_dropped_total",
		Help: "Function log lines dropped because the data dir's disk was full.",
	})
	reg.MustRegister(droppedLogs)
	appendLog := func(l store.LogLine) {
		if !disk.ok() {
			droppedLogs.Inc() // the disk is full: keep the reserve for calls' own writes
			return
		}
		st.AppendLog(context.Background(), l)
	}
	var scale *scaler.Scaler // the gateway's activator pokes it; it needs the providers, which report to the gateway
	var gw *gateway.Gateway
	// A provider reports only functions it was given (by the scaler, once
	// the gateway is up), so the gateway can be named here before it is.
	kp, err := openKube(ctx, cfg, token, st.SecretValue, func(ns, name string, s provider.State) { gw.SetState(ns, name, s) },
		func(ctx context.Context, ns, name, id string) { gw.Drain(ctx, ns, name, id) }, appendLog)
	if err != nil {
		return err
	}
	if kp != nil {
		down.push(kp.Close) // runs after the gateway's close, pushed later
	}
	names := rt.names()
	if kp != nil {
		names[kp.Name()] = true
		rt.prepare[kp.Name()] = kubePrepare(cfg)
	}
	switch cfg.Provider {
	case "", function.RuntimeDocker:
	case function.RuntimeKube:
		if kp == nil {
			return errors.New("--provider kube needs a cluster: give --kubeconfig FILE, or run nimbus in a pod")
		}
	default:
		return fmt.Errorf("--provider %q: use docker or kube", cfg.Provider)
	}
	gw = gateway.New(gateway.Options{
		OnCall:          rec.recorder.Record,
		Runtimes:        names,
		Activate:        func(fn function.Function, active int) { scale.Activate(fn, active) },
		Burst:           func(fn function.Function, want int) { scale.Burst(fn, want) },
		Log:             appendLog,
		Metrics:         gateway.NewMetrics(reg),
		MaxBodyBytes:    cfg.MaxBodyBytes,
		BodyReadTimeout: cfg.BodyReadTimeout,
		Logger:          log,
	})
	providers := map[string]provider.Provider{}
	for name, drv := range rt.drivers {
		p := provider.NewLocal(provider.LocalOptions{Driver: drv, OpenPackage: st.OpenPackage, SecretValue: st.SecretValue,
			Log: appendLog, Watch: gw.SetState, Drain: gw.Drain, Logger: log})
		providers[name] = p
		down.push(p.Close) // after the gateway has failed what was queued
	}
	if kp != nil {
		providers[kp.Name()] = kp
	}
	cluster, err := natscluster.Open(ctx, bb.Conn, bb.JS, gatewayID(), replicas)
	if err != nil {
		return err
	}
	scale = scaler.New(scaler.Options{Providers: providers, Load: gw.TakeLoad, Cluster: cluster, Logger: log})
	reg.MustRegister(scale.Collector())
	down.push(gw.Close)

	q, err := natsqueue.Open(ctx, bb.JS, natsqueue.Options{AckWait: cfg.AsyncAckWait, Logger: log, Replicas: replicas})
	if err != nil {
		return err
	}
	triggers, err := nattrigger.Open(ctx, bb.JS, replicas)
	if err != nil {
		return err
	}
	evStore, err := natsevents.Open(ctx, bb.JS, replicas)
	if err != nil {
		return err
	}
	down.push(func(context.Context) { evStore.Close() })
	disp := &async.Dispatcher{Queue: q, Invoke: gw, Spec: gw.Spec, Stored: stored(st), Logger: log, Heartbeat: cfg.AsyncAckWait / 3,
		Record: rec.recorder.Record, RecordThen: rec.recorder.RecordThen, Outbound: guard.Client(30 * time.Second)}
	down.push(func(context.Context) { disp.Close() }) // deliveries in progress finish; unsettled messages stay queued
	disp.ConsumeOutbound(events.OutboundNamespace, events.OutboundFunction, 64)
	disp.ConsumeOutbound(async.CallbackNamespace, async.CallbackFunction, 64)

	runCtx, stopRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	down.push(func(context.Context) { stopRun(); wg.Wait() })
	synced := make(chan struct{})
	// The scaling records first, so that functions applied next start at
	// the count the cluster holds for them.
	if err := scale.Start(runCtx); err != nil {
		return fmt.Errorf("scaling records: %w", err)
	}
	ctl := &controller.Controller{Store: st, Target: controller.Targets{gw, disp, scale}, Logger: log}
	wg.Go(func() { ctl.Run(runCtx, synced) })
	wg.Go(func() { scale.Run(runCtx) })
	select {
	case <-synced:
	case <-ctx.Done():
		return nil
	}
	if err := disp.Prune(ctx); err != nil {
		log.Warn("could not look for the async queues of deleted functions", "err", err)
	}
	sched := &trigger.Scheduler{Store: triggers, Queue: q, Spec: gw.Spec, Record: rec.recorder.Record, Logger: log}
	wg.Go(func() { sched.Run(runCtx) })

	deliver := &events.Deliverer{Queue: q, Gateway: gw, Spec: gw.Spec, Client: guard.Client(30 * time.Second), Record: rec.recorder.Record,
		LambdaRemote: cfg.LambdaEndpoint != ""}
	ingress := &events.Ingress{Store: evStore, MaxBodyBytes: cfg.MaxBodyBytes, Logger: log, Space: disk.check, Deliver: deliver}
	spool := filepath.Join(cfg.DataDir, "tmp")
	os.RemoveAll(spool) // uploads an earlier run left half-checked
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	asyncIn := &async.Handler{Queue: q, Spec: gw.Spec, MaxBodyBytes: cfg.MaxBodyBytes, Space: disk.check,
		CheckCallback: guard.CheckURL, Record: rec.recorder.Record}
	var api *apiserver.Server // the Lambda API deploys through it, and it serves the Lambda API
	vers := &versions.Manager{Store: st,
		Deploy: func(ctx context.Context, fn function.Function) (store.Record, error) {
			rec, _, err := api.Deploy(ctx, fn, apiserver.CreateOnly, 0)
			return rec, err
		},
		Delete: func(ctx context.Context, ns, name string) error { return api.RemoveFunction(ctx, ns, name) },
	}
	lambdaAPI := lambdaapi.New(lambdaapi.Options{Store: st, Invoke: gw, Async: asyncIn, Logger: log,
		Deploy: func(ctx context.Context, fn function.Function, create bool) (store.Record, error) {
			mode := apiserver.UpdateOnly
			if create {
				mode = apiserver.CreateOnly
			}
			rec, _, err := api.Deploy(ctx, fn, mode, 0)
			return rec, err
		},
		StorePackage: func(ctx context.Context, tgz []byte) (string, error) { return api.StorePackage(ctx, tgz) },
		Delete:       func(ctx context.Context, ns, name string) error { return api.DeleteFunction(ctx, ns, name) },
		Versions:     vers,
	})
	deliver.Lambda = lambdaclient.New(cfg.LambdaEndpoint, lambdaAPI)
	deliver.Qualified = func(ctx context.Context, ns, name, qualifier string) (string, error) {
		target, _, err := vers.Resolve(ctx, ns, name, qualifier)
		return target, err
	}
	api = apiserver.New(apiserver.Options{
		SpoolDir: spool, PackageLimits: cfg.PackageLimits,
		Store: st, Invoker: gw, Scaling: scale, Token: token, Runtimes: names, ImageRuntime: cfg.Provider, PackageRuntime: packageRuntime(cfg.Provider), Prepare: rt.prepare, Version: cfg.Version,
		UI:          ui.Handler(),
		Lambda:      lambdaAPI,
		Versions:    vers,
		Metrics:     promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		MetricsAuth: cfg.MetricsAuth,
		Ready: func(ctx context.Context) error {
			if err := disk.check(); err != nil {
				return err
			}
			return st.Ping(ctx)
		},
		Space:       disk.check,
		Queue:       q,
		Async:       asyncIn,
		Calls:       rec.index,
		Triggers:    triggers,
		EventConfig: &events.ConfigAPI{Store: evStore, CheckURL: guard.CheckURL},
		CloudEvents: ingress.CloudEvents(),
		Logger:      log,
	})

	serveErr := make(chan error, 2)
	srv, url, err := listen(cfg, cfg.Listen, api, serveErr)
	if err != nil {
		return fmt.Errorf("%w (use --listen to pick another address)", err)
	}
	servers := []*http.Server{srv}
	eventsURL := ""
	if cfg.EventsListen != "off" {
		esrv, eurl, err := listen(cfg, cfg.EventsListen, ingress.EventsAPI(), serveErr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("%w (use --events-listen to pick another address, or off)", err)
		}
		servers, eventsURL = append(servers, esrv), eurl
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, URLFile), []byte(url+"\n"), 0o600); err != nil {
		log.Warn("cannot record the URL in the data dir", "err", err)
	}
	if started != nil {
		tokenPath := filepath.Join(cfg.DataDir, TokenFile)
		if cfg.AdminTokenFile != "" {
			tokenPath = cfg.AdminTokenFile
		}
		s := Started{URL: url, TokenPath: tokenPath, Docker: rt.note, EventsURL: eventsURL, Isolation: rt.isolation}
		if kp != nil {
			s.Kube = kp.Where()
		}
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
	bounded, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	stopCtx, stopped = bounded, func() { cancel(); log.Info("stopped") }
	var drain sync.WaitGroup
	for _, s := range servers {
		drain.Go(func() {
			if err := s.Shutdown(bounded); err != nil {
				log.Warn("in-flight requests did not finish in time", "err", err)
				s.Close()
			}
		})
	}
	drain.Wait()
	os.Remove(filepath.Join(cfg.DataDir, URLFile))
	return runErr
}

// listen starts serving h on addr with nimbus's limits and timeouts.
func listen(cfg Config, addr string, h http.Handler, serveErr chan<- error) (*http.Server, string, error) {
	srv := &http.Server{
		Handler:           limitHeaders(limitBodies(h, cfg.BodyReadTimeout), cfg.MaxHeaderBytes),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	go func() { serveErr <- srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String(), nil
}

// shutdown is a stack of stop functions.
type shutdown []func(context.Context)

func (s *shutdown) push(f func(context.Context)) { *s = append(*s, f) }

func (s *shutdown) run(ctx context.Context) {
	for i := len(*s) - 1; i >= 0; i-- {
		(*s)[i](ctx)
	}
}
