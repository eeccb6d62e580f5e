// Package natscluster is scaler.Cluster on NATS: gateways publish their
// load on nimbus.load.ID (core NATS: it is worth a second at most), the
// decisions and the API's floors are a KV bucket (nimbus_scale: d.NS.NAME,
// f.NS.NAME) every gateway watches, and the decider's lease is the key
// "decider" of a KV bucket whose entries live scaler.LeaseTTL
// (nimbus_leases): its holder renews it by compare-and-set each tick, and
// when it stops the entry expires and another gateway creates it.
package natscluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/scaler"
)

var _ scaler.Cluster = (*Cluster)(nil)

const leaseKey = "decider"

// Cluster is one gateway's membership.
type Cluster struct {
	id     string
	nc     *nats.Conn
	kv     jetstream.KeyValue
	leases jetstream.KeyValue

	mu       sync.Mutex
	leaseRev uint64
}

// Open creates or binds the buckets; id names this gateway (it must be a
// NATS subject token: letters, digits, '-' and '_').
func Open(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, id string, replicas int) (*Cluster, error) {
	if replicas == 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "nimbus_scale", Description: "scaling decisions and the API's floors, by function",
		Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("scale bucket: %w", err)
	}
	leases, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "nimbus_leases", Description: "who decides scaling; an entry not renewed expires",
		Storage: jetstream.MemoryStorage, TTL: scaler.LeaseTTL, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket: %w", err)
	}
	return &Cluster{id: id, nc: nc, kv: kv, leases: leases}, nil
}

// ID implements scaler.Cluster.
func (c *Cluster) ID() string { return c.id }

// PublishLoad implements scaler.Cluster.
func (c *Cluster) PublishLoad(_ context.Context, l scaler.Load) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return c.nc.Publish("nimbus.load."+c.id, b)
}

// SubscribeLoad implements scaler.Cluster.
func (c *Cluster) SubscribeLoad(ctx context.Context, fn func(scaler.Load)) error {
	sub, err := c.nc.Subscribe("nimbus.load.*", func(m *nats.Msg) {
		if m.Subject == "nimbus.load."+c.id {
			return
		}
		var l scaler.Load
		if json.Unmarshal(m.Data, &l) == nil && l.Gateway != "" {
			fn(l)
		}
	})
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { sub.Unsubscribe() })
	return nil
}

// Lead implements scaler.Cluster; the term is the lease entry's revision
// (the bucket's sequence, which only grows).
func (c *Cluster) Lead(ctx context.Context) (uint64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaseRev != 0 {
		rev, err := c.leases.Update(ctx, leaseKey, []byte(c.id), c.leaseRev)
		if err == nil {
			c.leaseRev = rev
			return rev, true, nil
		}
		c.leaseRev = 0 // expired (this gateway stalled), or taken
	}
	rev, err := c.leases.Create(ctx, leaseKey, []byte(c.id))
	if err == nil {
		c.leaseRev = rev
		return rev, true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, false, err
	}
	e, err := c.leases.Get(ctx, leaseKey)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, false, nil // expired between the two calls: try again next tick
		}
		return 0, false, err
	}
	if string(e.Value()) == c.id { // ours, from before a reconnect
		c.leaseRev = e.Revision()
		return c.leaseRev, true, nil
	}
	return 0, false, nil
}

func kvKey(prefix, key string) string { return prefix + "." + strings.ReplaceAll(key, "/", ".") }

// PutDecision implements scaler.Cluster.
func (c *Cluster) PutDecision(ctx context.Context, key string, d scaler.Decision) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = c.kv.Put(ctx, kvKey("d", key), b)
	return err
}

// PutFloor implements scaler.Cluster.
func (c *Cluster) PutFloor(ctx context.Context, key string, n int) error {
	b, _ := json.Marshal(n)
	_, err := c.kv.Put(ctx, kvKey("f", key), b)
	return err
}

// Delete implements scaler.Cluster.
func (c *Cluster) Delete(ctx context.Context, key string) error {
	var errs []error
	for _, p := range []string{"d", "f"} {
		if err := c.kv.Purge(ctx, kvKey(p, key)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Watch implements scaler.Cluster.
func (c *Cluster) Watch(ctx context.Context, fn func(scaler.Change)) error {
	w, err := c.kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	initial := make(chan struct{})
	go func() {
		defer w.Stop()
		closed := false
		for e := range w.Updates() {
			if e == nil {
				if !closed {
					close(initial)
					closed = true
				}
				continue
			}
			if ch, ok := change(e); ok {
				fn(ch)
			}
		}
		if !closed {
			close(initial)
		}
	}()
	select {
	case <-initial:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// change reads a KV entry as a Change: d.NS.NAME, f.NS.NAME.
func change(e jetstream.KeyValueEntry) (scaler.Change, bool) {
	parts := strings.SplitN(e.Key(), ".", 3)
	if len(parts) != 3 {
		return scaler.Change{}, false
	}
	ch := scaler.Change{Key: parts[1] + "/" + parts[2]}
	if e.Operation() != jetstream.KeyValuePut {
		ch.Deleted = parts[0] == "d"
		return ch, ch.Deleted
	}
	switch parts[0] {
	case "d":
		var d scaler.Decision
		if json.Unmarshal(e.Value(), &d) != nil {
			return ch, false
		}
		ch.Decision = &d
	case "f":
		var n int
		if json.Unmarshal(e.Value(), &n) != nil {
			return ch, false
		}
		ch.Floor = &n
	default:
		return ch, false
	}
	return ch, true
}
