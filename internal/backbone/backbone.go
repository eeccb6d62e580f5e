// Package backbone connects nimbus to NATS JetStream: either a server embedded in
// this process (no TCP listener unless asked, file storage in the data dir,
// every write synced to disk before it is acknowledged) or an external NATS by
// URL. Both give the same *nats.Conn and jetstream.JetStream, so everything
// built on top runs the same code either way.
package backbone

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says which NATS to use.
type Config struct {
	// URL of an external NATS server. Empty: embed one.
	URL string
	// Dir holds the embedded server's JetStream files.
	Dir string
	// Listen, if set, makes the embedded server also accept TCP clients there
	// ("127.0.0.1:4222"). Empty: in-process connections only.
	Listen string
	// Replicas, above 1, is how many copies nimbus keeps of each stream
	// and bucket: Open waits until the NATS cluster can make such a one
	// (its members met, a meta leader elected).
	Replicas int
}

// Backbone is an open connection to JetStream.
type Backbone struct {
	Conn *nats.Conn
	JS   jetstream.JetStream
	srv  *server.Server // nil when external
}

// Open starts or connects to NATS and returns once JetStream answers.
func Open(ctx context.Context, cfg Config) (*Backbone, error) {
	b := &Backbone{}
	opts := []nats.Option{nats.Name("nimbus"), nats.MaxReconnects(-1)}
	url := cfg.URL
	if url == "" {
		srv, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		b.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := connect(ctx, url, opts)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to NATS %s: %w", url, err)
	}
	b.Conn = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b.JS = js
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		b.Close()
		return nil, fmt.Errorf("JetStream is not available on %s: %w", describe(url), err)
	}
	if cfg.Replicas > 1 {
		if err := awaitReplicas(ctx, js, cfg.Replicas); err != nil {
			b.Close()
			return nil, fmt.Errorf("JetStream on %s cannot keep %d replicas: %w", describe(url), cfg.Replicas, err)
		}
	}
	return b, nil
}

// awaitReplicas makes (or finds) a small bucket with replicas copies,
// retrying while the cluster forms (members starting beside nimbus on
// Kubernetes), for up to connectWait: nimbus's own streams and buckets are
// then made at once.
func awaitReplicas(ctx context.Context, js jetstream.JetStream, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := js.CreateOrUpdateKeyValue(actx, jetstream.KeyValueConfig{Bucket: "nimbus_backbone", History: 1, Replicas: replicas, Storage: jetstream.FileStorage})
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (waited %s for the cluster)", err, connectWait)
		case <-time.After(time.Second):
		}
	}
}

// connectWait bounds how long nimbus waits for an external NATS that does
// not answer yet (its pods starting beside nimbus's on Kubernetes).
var connectWait = time.Minute

// connect connects, retrying an external server that does not answer
// for up to connectWait.
func connect(ctx context.Context, url string, opts []nats.Option) (*nats.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil || url == "" {
			return nc, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (retried for %s)", err, connectWait)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func describe(url string) string {
	if url == "" {
		return "the embedded server"
	}
	return url
}

func startEmbedded(cfg Config) (*server.Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded NATS needs a storage directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	o := &server.Options{
		ServerName: "nimbus",
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: true, // sync_interval: always — an acknowledged write survives kill -9
		// Limits of their own, not 75% of the disk's free space at start
		// (nats-server's default): the streams' byte limits must fit in
		// them on a small or nearly full disk too. nimbus watches the disk
		// itself; a write that finds it full fails, and works again once
		// there is room.
		JetStreamMaxStore:  maxStore,
		JetStreamMaxMemory: maxMemory,
		NoSigs:             true,
		NoLog:              true,
		DontListen:         cfg.Listen == "",
		MaxPayload:         8 << 20,
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, err
		}
		o.Host, o.Port = host, port
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded NATS did not become ready within 30s")
	}
	return srv, nil
}

// JetStream limits of the embedded server.
const (
	maxStore  = 1 << 40
	maxMemory = 256 << 20
)

// ClientURL is where TCP clients reach the embedded server, or "" if none.
func (b *Backbone) ClientURL() string {
	if b.srv == nil || b.srv.Addr() == nil {
		return ""
	}
	return b.srv.ClientURL()
}

// Close drains the connection and stops the embedded server, if any.
func (b *Backbone) Close() {
	if b.Conn != nil {
		b.Conn.Drain()
		b.Conn.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}
