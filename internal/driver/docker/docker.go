// Package docker runs function instances as containers through the Docker
// Engine API (the official moby client, never the docker CLI).
//
// Every container carries labels naming it as nimbus's (and which nimbus's,
// by owner id), runs on nimbus's own bridge network, where the gateway reaches
// it directly at its address on port 8080, with memory, CPU and pids limits,
// all capabilities dropped, no new privileges, a non-root user unless the
// image names its own, and optionally a read-only root with a writable /tmp.
// Its stdout and stderr, read through the Engine API, go to the function's
// log stream. Reap removes the containers an earlier run of this nimbus left.
package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"nimbus/internal/driver"
	"nimbus/internal/function"
)

var _ driver.Driver = (*Driver)(nil)

// Labels on every container and network nimbus creates.
const (
	LabelManaged   = "io.nimbus.managed"
	LabelOwner     = "io.nimbus.owner"
	LabelFunction  = "io.nimbus.function"
	LabelNamespace = "io.nimbus.namespace"
	LabelRevision  = "io.nimbus.revision"
	LabelInstance  = "io.nimbus.instance"
)

// ContainerPort is where a function serves inside its container ($PORT).
const ContainerPort = 8080

// Options configure the driver.
type Options struct {
	// Host is the engine's address (DOCKER_HOST form); empty uses
	// DOCKER_HOST or the default socket.
	Host string
	// Owner tells this nimbus's containers from another's on the same engine.
	Owner string
	// Network is the bridge network instances join. Default "nimbus-OWNER"
	// (its first 12 characters): a nimbus's containers share a network with
	// no other nimbus's, and Close removes it.
	Network string
	// SecretsDir holds per-instance secret directories to bind-mount.
	// Default a temporary directory; nimbus up keeps it in its data dir, so
	// that what a crash leaves is removed by the next start (Reap).
	SecretsDir string
	// PidsLimit caps processes per container. Default 512.
	PidsLimit int64
	// User is the user a container runs as when its image names none.
	// Default "65534:65534" (nobody).
	User string
}

// Driver runs instances as containers.
type Driver struct {
	cli   *client.Client
	opts  Options
	seq   atomic.Uint64
	boot  string
	users sync.Map // image → user to run as
	// secretsRoot holds per-instance secret directories to bind-mount.
	secretsRoot string
	mu          sync.Mutex
	live        map[string]*instance
	close       bool
}

// New connects to the engine and makes sure nimbus's network exists. It fails
// when no engine answers.
func New(ctx context.Context, o Options) (*Driver, error) {
	if o.Owner == "" {
		return nil, errors.New("docker driver: Owner is required")
	}
	if o.Network == "" {
		o.Network = "nimbus-" + o.Owner[:min(12, len(o.Owner))]
	}
	if o.PidsLimit == 0 {
		o.PidsLimit = 512
	}
	if o.User == "" {
		o.User = "65534:65534"
	}
	opts := []client.Opt{client.FromEnv} // the client negotiates the API version itself
	if o.Host != "" {
		opts = append(opts, client.WithHost(o.Host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("no Docker engine answers at %s: %w", cli.DaemonHost(), err)
	}
	root := o.SecretsDir
	if root == "" {
		root, err = os.MkdirTemp("", "nimbus-docker-secrets-")
	} else {
		err = os.MkdirAll(root, 0o700)
	}
	if err != nil {
		cli.Close()
		return nil, err
	}
	d := &Driver{cli: cli, opts: o, live: map[string]*instance{}, secretsRoot: root,
		boot: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	if err := d.ensureNetwork(ctx); err != nil {
		cli.Close()
		return nil, err
	}
	return d, nil
}

// Host is the engine's address.
func (d *Driver) Host() string { return d.cli.DaemonHost() }

// Name is "docker".
func (d *Driver) Name() string { return function.RuntimeDocker }

func (d *Driver) ensureNetwork(ctx context.Context) error {
	if _, err := d.cli.NetworkInspect(ctx, d.opts.Network, client.NetworkInspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: inspect network %s: %w", d.opts.Network, err)
	}
	_, err := d.cli.NetworkCreate(ctx, d.opts.Network, client.NetworkCreateOptions{
		Driver: "bridge", Labels: map[string]string{LabelManaged: "true", LabelOwner: d.opts.Owner},
	})
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("docker: create network %s: %w", d.opts.Network, err)
	}
	return nil
}

// Reap removes every container of this owner that an earlier run left.
func (d *Driver) Reap(ctx context.Context) error {
	list, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: client.Filters{}.Add("label", LabelOwner+"="+d.opts.Owner),
	})
	if err != nil {
		return fmt.Errorf("docker: list leftover containers: %w", err)
	}
	var errs []error
	for _, c := range list.Items {
		d.mu.Lock()
		_, ours := d.live[c.Labels[LabelInstance]]
		d.mu.Unlock()
		if ours {
			continue
		}
		if _, err := d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	// Secret directories of instances an earlier run left.
	entries, _ := os.ReadDir(d.secretsRoot)
	for _, e := range entries {
		d.mu.Lock()
		_, ours := d.live[e.Name()]
		d.mu.Unlock()
		if !ours {
			p := filepath.Join(d.secretsRoot, e.Name())
			os.Chmod(p, 0o700)
			os.RemoveAll(p)
		}
	}
	return errors.Join(errs...)
}

// Close stops every instance this driver started and closes the client.
func (d *Driver) Close(ctx context.Context) error {
	d.mu.Lock()
	d.close = true
	all := make([]*instance, 0, len(d.live))
	for _, in := range d.live {
		all = append(all, in)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, in := range all {
		wg.Go(func() { in.Stop(ctx) })
	}
	wg.Wait()
	rctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// A start still under way when Close began may have made a container
	// that is in no list yet: remove whatever carries this owner's label.
	d.mu.Lock()
	d.live = map[string]*instance{}
	d.mu.Unlock()
	d.Reap(rctx)
	os.RemoveAll(d.secretsRoot)
	// The network goes with the last of its containers; the engine refuses
	// while one is still being removed, so try for a while.
	var err error
	for delay := 50 * time.Millisecond; ; delay = min(delay*2, time.Second) {
		if _, err = d.cli.NetworkRemove(rctx, d.opts.Network, client.NetworkRemoveOptions{}); err == nil || cerrdefs.IsNotFound(err) {
			err = nil
			break
		}
		select {
		case <-rctx.Done():
		case <-time.After(delay):
			continue
		}
		break
	}
	d.cli.Close()
	if err != nil {
		return fmt.Errorf("docker: remove network %s: %w", d.opts.Network, err)
	}
	return nil
}
