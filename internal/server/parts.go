package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"nimbus/internal/backbone"
	"nimbus/internal/calls"
	"nimbus/internal/calls/natscalls"
	"nimbus/internal/driver"
	"nimbus/internal/driver/docker"
	"nimbus/internal/driver/process"
	"nimbus/internal/fetchtoken"
	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/provider/kube"
	"nimbus/internal/store"
)

// ParseUIDRange reads --function-uids ("700000-799999").
func ParseUIDRange(s string) (process.UIDRange, error) { return process.ParseUIDRange(s) }

// runtimes are the drivers nimbus runs functions with.
type runtimes struct {
	drivers   map[string]driver.Driver
	prepare   map[string]func(context.Context, function.Function) error
	note      string // whether docker is on, and why
	isolation string // how process functions are kept apart
}

func (r runtimes) names() map[string]bool {
	out := map[string]bool{}
	for name := range r.drivers {
		out[name] = true
	}
	return out
}

// openRuntimes starts the process driver, and the docker driver when an
// engine answers; each first removes what an earlier run left.
func openRuntimes(ctx context.Context, cfg Config, down *shutdown) (runtimes, error) {
	log := cfg.Logger
	if os.Geteuid() == 0 && cfg.RunAs == "" {
		// Functions run as users of their own and must pass through the
		// data dir to their directories (it lists nothing to them: 0711).
		if err := os.Chmod(cfg.DataDir, 0o711); err != nil {
			return runtimes{}, err
		}
	}
	proc, err := process.New(process.Options{StateDir: filepath.Join(cfg.DataDir, "instances"), RunAs: cfg.RunAs,
		UIDs: cfg.FunctionUIDs, Package: cfg.PackageLimits, MaxUnpackedBytes: cfg.MaxUnpackedBytes, Logger: log})
	if err != nil {
		return runtimes{}, err
	}
	down.push(func(ctx context.Context) { proc.Close(ctx) })
	if err := proc.Reap(ctx); err != nil {
		log.Warn("could not reap instances of an earlier run", "err", err)
	}
	rt := runtimes{drivers: map[string]driver.Driver{proc.Name(): proc}, prepare: map[string]func(context.Context, function.Function) error{},
		isolation: proc.Isolation()}
	log.Info("process functions: " + rt.isolation)
	owner, err := ownerID(cfg.DataDir)
	if err != nil {
		return runtimes{}, err
	}
	dk, err := docker.New(ctx, docker.Options{Owner: owner, SecretsDir: filepath.Join(cfg.DataDir, "docker-secrets")})
	if err != nil {
		rt.note = fmt.Sprintf("docker off (%v): start dockerd or set DOCKER_HOST, then restart", err)
		log.Info("runtime docker is off: no Docker engine answers; start dockerd or set DOCKER_HOST, then restart nimbus", "err", err)
		return rt, nil
	}
	down.push(func(context.Context) { dk.Close(context.Background()) })
	if err := dk.Reap(ctx); err != nil {
		log.Warn("could not remove containers of an earlier run", "err", err)
	}
	rt.drivers[dk.Name()] = dk
	rt.prepare[dk.Name()] = dk.Prepare
	rt.note = "docker (engine at " + dk.Host() + ")"
	log.Info("runtime docker is on", "engine", dk.Host())
	return rt, nil
}

// callRecords is where call records go (recorder) and are looked up (index).
type callRecords struct {
	recorder *calls.Recorder
	index    *calls.Index
}

// openCalls opens the call-record stream: records are written in batches
// off the request path and read from an index that follows the stream (so
// it holds every gateway's records).
func openCalls(ctx context.Context, cfg Config, bb *backbone.Backbone, disk *space, down *shutdown) (callRecords, error) {
	stream, err := natscalls.Open(ctx, bb.JS, natscalls.Options{MaxAge: cfg.CallRetention, Replicas: max(cfg.NATSReplicas, 1)})
	if err != nil {
		return callRecords{}, err
	}
	c := callRecords{recorder: calls.NewRecorder(spaceSink{stream, disk}, calls.RecorderOptions{Logger: cfg.Logger}),
		index: calls.NewIndex(cfg.MaxCallRecords, cfg.CallRetention)}
	followCtx, stopFollow := context.WithCancel(context.Background())
	down.push(func(context.Context) {
		stopFollow()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.recorder.Close(ctx)
	})
	go func() {
		for followCtx.Err() == nil {
			err := stream.Follow(followCtx, func(b []calls.Record) { c.index.Add(b, time.Now()) })
			if err != nil && followCtx.Err() == nil {
				cfg.Logger.Warn("following call records failed; retrying", "err", err)
				time.Sleep(time.Second)
			}
		}
	}()
	return c, nil
}

// spaceSink keeps call records back (the recorder holds them for the next
// try) while the data dir's disk is full.
type spaceSink struct {
	calls.Sink
	disk *space
}

func (s spaceSink) Append(ctx context.Context, batch []calls.Record) error {
	if err := s.disk.check(); err != nil {
		return err
	}
	return s.Sink.Append(ctx, batch)
}

// gatewayID names this nimbus among the gateways sharing its NATS: the
// host's name and a random suffix (a restart is a new gateway), as a NATS
// subject token.
func gatewayID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range host {
		if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_') {
			b.WriteRune(r)
		}
	}
	name := b.String()
	if name == "" || len(name) > 40 {
		name = "nimbus"
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	return name + "-" + hex.EncodeToString(rnd[:])
}

// openKube starts the kube runtime's provider: on the cluster of
// --kubeconfig, or, with --provider kube in a pod, of the in-cluster
// config; nil when neither.
// Missing permissions fail the start, naming them.
func openKube(ctx context.Context, cfg Config, adminToken string, secretValue func(context.Context, string, string) ([]byte, error), watch provider.Watcher, drain provider.Drainer, logLine func(store.LogLine)) (*kube.Provider, error) {
	rc, where, err := kube.Config(cfg.Kubeconfig, cfg.Provider == function.RuntimeKube)
	if err != nil || rc == nil {
		return nil, err
	}
	ns := cfg.KubeNamespace
	if ns == "" {
		ns = function.OpenFaaSNamespace
	}
	api, err := kube.NewAPI(rc)
	if err != nil {
		return nil, fmt.Errorf("kube: %s: %w", where, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kube.CheckAccess(ctx, api, ns); err != nil {
		return nil, fmt.Errorf("kube (%s): %w", where, err)
	}
	o := kube.Options{API: api, Namespace: ns, Watch: watch, Drain: drain, Log: logLine, Where: where, Logger: cfg.Logger,
		RuntimeImage: cfg.KubeRuntimeImage, SecretValue: secretValue}
	if base := strings.TrimRight(cfg.KubeAPIURL, "/"); base != "" {
		// A pod gets its package's token, never the admin token.
		key := fetchtoken.Key(adminToken)
		o.Package = func(digest string) (string, string) {
			return base + "/v1/packages/" + digest, fetchtoken.Token(key, digest)
		}
	}
	p, err := kube.New(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("kube (%s): %w", where, err)
	}
	cfg.Logger.Info("runtime kube is on", "cluster", where, "namespace", ns)
	return p, nil
}

// packageRuntime is the runtime of a package function that names none.
func packageRuntime(provider string) string {
	if provider == function.RuntimeKube {
		return function.RuntimeKube
	}
	return function.RuntimeProcess
}

// kubePrepare refuses, at deploy, a package function the kube runtime
// cannot run: one whose pods would not know where to fetch it.
func kubePrepare(cfg Config) func(context.Context, function.Function) error {
	return func(_ context.Context, fn function.Function) error {
		if fn.Package != "" && (cfg.KubeAPIURL == "" || cfg.KubeRuntimeImage == "") {
			return errors.New("runtime \"kube\" runs packages only when nimbus is started with --kube-api-url URL (where the functions' pods reach its API) and --kube-runtime-image: restart it with them, or give the function an image")
		}
		return nil
	}
}

// stored asks the store (its leader, not a watch's view) whether a
// function exists.
func stored(st store.Store) func(context.Context, string, string) (bool, error) {
	return func(ctx context.Context, ns, name string) (bool, error) {
		_, err := st.Get(ctx, ns, name)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
}
