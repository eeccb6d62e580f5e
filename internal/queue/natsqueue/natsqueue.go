// Package natsqueue is the JetStream backend of queue.Queue: a work-queue
// stream of invocations (one durable consumer per function, its
// MaxAckPending the function's capacity) and a stream of dead letters.
package natsqueue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/queue"
)

var _ queue.Queue = (*Queue)(nil)

const (
	asyncStream = "NIMBUS_ASYNC"
	asyncSubj   = "nimbus.async"
	dlqStream   = "NIMBUS_DLQ"
	dlqSubj     = "nimbus.dlq"
)

// Options bound the streams.
type Options struct {
	MaxQueueBytes     int64         // default 1 GiB; beyond it Enqueue fails (never drops)
	DLQMaxAge         time.Duration // default 14 days
	AckWait           time.Duration // default 30s: an unsettled delivery comes back after it; workers extend it while they run
	IdempotencyWindow time.Duration // default 24h
	Replicas          int
	// Logger hears of messages that cannot be decoded. Default slog.Default().
	Logger *slog.Logger
}

// Queue is a queue.Queue on JetStream.
type Queue struct {
	js     jetstream.JetStream
	work   jetstream.Stream
	dlq    jetstream.Stream
	keys   jetstream.KeyValue    // idempotency keys, expiring after the window
	bodies jetstream.ObjectStore // bodies too large for a message, by call id
	opts   Options
}

// InlineBody is the largest body a message carries itself; larger ones are
// stored in the object store bucket nimbus_bodies (so that a message stays
// under NATS's payload limit, 1 MiB by default, whatever its body).
const InlineBody = 256 << 10

// Open creates or binds the streams.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Queue, error) {
	if o.MaxQueueBytes == 0 {
		o.MaxQueueBytes = 1 << 30
	}
	if o.DLQMaxAge == 0 {
		o.DLQMaxAge = 14 * 24 * time.Hour
	}
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.IdempotencyWindow == 0 {
		o.IdempotencyWindow = 24 * time.Hour
	}
	work, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: asyncStream, Subjects: []string{asyncSubj + ".>"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Replicas: o.Replicas, MaxBytes: o.MaxQueueBytes, Discard: jetstream.DiscardNew,
		Duplicates: 10 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("async stream: %w", err)
	}
	dlq, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: dlqStream, Subjects: []string{dlqSubj + ".>"}, Storage: jetstream.FileStorage,
		Replicas: o.Replicas, MaxAge: o.DLQMaxAge, Duplicates: 10 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	keys, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "nimbus_idempotency", Description: "Idempotency-Key → call id, for the idempotency window",
		TTL: o.IdempotencyWindow, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("idempotency bucket: %w", err)
	}
	bodies, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: "nimbus_bodies", Description: "bodies of queued calls too large for a message, by call id",
		Storage: jetstream.FileStorage, Replicas: o.Replicas, TTL: o.DLQMaxAge + 24*time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("body store: %w", err)
	}
	q := &Queue{js: js, work: work, dlq: dlq, keys: keys, bodies: bodies, opts: o}
	if err := q.dropOldConsumers(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

func subject(ns, name string) string { return asyncSubj + "." + ns + "." + name }

// consumerName is a function's durable consumer. Names and namespaces are
// DNS labels (the outbound queue's are "_outbound"), so "_" cannot occur in
// them and the name is one function's alone; "async-NS-NAME", the earlier
// scheme, was shared by team-a/x and team/a-x.
func consumerName(ns, name string) string { return "async_" + ns + "_" + name }

// dropOldConsumers deletes consumers named by the earlier scheme; their
// messages stay in the stream for the new consumers (a work queue allows
// one consumer per subject, so both cannot exist).
func (q *Queue) dropOldConsumers(ctx context.Context) error {
	names := q.work.ConsumerNames(ctx)
	var old []string
	for n := range names.Name() {
		if !strings.HasPrefix(n, "async_") {
			old = append(old, n)
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("async stream consumers: %w", err)
	}
	for _, n := range old {
		if err := q.work.DeleteConsumer(ctx, n); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete consumer %s: %w", n, err)
		}
	}
	return nil
}

// Enqueue publishes and waits for JetStream's acknowledgement, which the
// server gives only once the message is stored (and synced, when the server
// syncs every write). The message id makes a repeated publish of the same
// attempt a no-op.
func (q *Queue) Enqueue(ctx context.Context, m queue.Message) error {
	if err := q.storeBody(ctx, &m); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := q.js.Publish(ctx, subject(m.Namespace, m.Function), b, jetstream.WithMsgID(msgID(m))); err != nil {
		return fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	return nil
}

// msgID makes a repeated publish of one attempt a no-op; a redrive is a new
// publish of its attempts.
func msgID(m queue.Message) string {
	id := m.CallID + "#" + strconv.Itoa(m.Attempt)
	if m.Redrives > 0 {
		id += "#r" + strconv.Itoa(m.Redrives)
	}
	return id
}

func bodyName(callID string) string { return "body." + callID }

// storeBody moves a large body out of the message into the body store
// (once: a message whose BodyRef is set already has it stored).
func (q *Queue) storeBody(ctx context.Context, m *queue.Message) error {
	if len(m.Body) <= InlineBody {
		return nil
	}
	if m.BodyRef == "" {
		name := bodyName(m.CallID)
		if _, err := q.bodies.PutBytes(ctx, name, m.Body); err != nil {
			return fmt.Errorf("%w: storing a body of %d bytes: %v", queue.ErrUnavailable, len(m.Body), err)
		}
		m.BodyRef = name
	}
	m.Body = nil
	return nil
}

// loadBody fills a message's body from the body store.
func (q *Queue) loadBody(ctx context.Context, m *queue.Message) error {
	if m.BodyRef == "" || m.Body != nil {
		return nil
	}
	b, err := q.bodies.GetBytes(ctx, m.BodyRef)
	if err != nil {
		return err
	}
	m.Body = b
	return nil
}

func (q *Queue) dropBody(ctx context.Context, ref string) {
	if ref == "" {
		return
	}
	if err := q.bodies.Delete(ctx, ref); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		q.opts.Logger.Warn("a stored body was not deleted; it expires with the dead letters", "body", ref, "err", err)
	}
}

// Consume runs a durable consumer for one function until ctx ends.
func (q *Queue) Consume(ctx context.Context, ns, name string, maxInFlight int, handle func(queue.Delivery)) error {
	cons, err := q.js.CreateOrUpdateConsumer(ctx, asyncStream, jetstream.ConsumerConfig{
		Durable: consumerName(ns, name), FilterSubject: subject(ns, name),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: q.opts.AckWait, MaxDeliver: -1,
		MaxAckPending: max(1, maxInFlight),
	})
	if err != nil {
		return fmt.Errorf("%w: consumer for %s/%s: %v", queue.ErrUnavailable, ns, name, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if ctx.Err() != nil {
			// Pulled as this consumer was stopping (a resize starts
			// another on the same durable): give it back at once, not
			// after AckWait.
			msg.Nak()
			return
		}
		var m queue.Message
		if err := json.Unmarshal(msg.Data(), &m); err != nil {
			// Not ours to understand: never redeliver it, but say so.
			meta, _ := msg.Metadata()
			var seq uint64
			if meta != nil {
				seq = meta.Sequence.Stream
			}
			q.opts.Logger.Error("an async message cannot be decoded; it is dropped", "function", ns+"/"+name,
				"subject", msg.Subject(), "stream_sequence", seq, "bytes", len(msg.Data()), "err", err)
			msg.Term()
			return
		}
		if m.BodyRef == "" {
			handle(&delivery{q: q, msg: msg, m: m})
			return
		}
		go func() { // not on the consumer's goroutine: the body may be large
			lctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := q.loadBody(lctx, &m); err != nil {
				if errors.Is(err, jetstream.ErrObjectNotFound) {
					q.opts.Logger.Error("an async call's stored body is gone; the call is dropped", "function", ns+"/"+name,
						"call", m.CallID, "body", m.BodyRef)
					msg.Term()
					return
				}
				q.opts.Logger.Warn("an async call's body could not be read; it will be delivered again", "call", m.CallID, "err", err)
				msg.NakWithDelay(time.Second)
				return
			}
			handle(&delivery{q: q, msg: msg, m: m})
		}()
	}, jetstream.PullMaxMessages(max(1, maxInFlight)))
	if err != nil {
		return fmt.Errorf("%w: consume %s/%s: %v", queue.ErrUnavailable, ns, name, err)
	}
	<-ctx.Done()
	// Drain, not Stop: Stop drops what the pull already brought, unacked,
	// and it would come back only after AckWait (with MaxAckPending 1,
	// holding up everything behind it); draining hands it to the callback
	// above, which gives it back.
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
		cc.Stop()
	}
	return nil
}

// RemoveConsumer deletes a function's consumer (when the function is deleted).
func (q *Queue) RemoveConsumer(ctx context.Context, ns, name string) error {
	err := q.work.DeleteConsumer(ctx, consumerName(ns, name))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	return err
}

// Pending counts the function's messages: those its consumer has not been
// handed yet and those it holds unacknowledged; without a consumer, what
// its subject holds.
func (q *Queue) Pending(ctx context.Context, ns, name string) (int, error) {
	c, err := q.work.Consumer(ctx, consumerName(ns, name))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		info, err := q.work.Info(ctx, jetstream.WithSubjectFilter(subject(ns, name)))
		if err != nil {
			return 0, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
		}
		return int(info.State.Msgs), nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	return int(info.NumPending) + info.NumAckPending, nil
}

// Functions lists the functions with messages in the stream or a consumer.
func (q *Queue) Functions(ctx context.Context) ([][2]string, error) {
	seen := map[[2]string]bool{}
	add := func(subj string) {
		rest, ok := strings.CutPrefix(subj, asyncSubj+".")
		if ns, name, ok2 := strings.Cut(rest, "."); ok && ok2 {
			seen[[2]string{ns, name}] = true
		}
	}
	info, err := q.work.Info(ctx, jetstream.WithSubjectFilter(asyncSubj+".>"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	for subj := range info.State.Subjects {
		add(subj)
	}
	list := q.work.ListConsumers(ctx)
	for c := range list.Info() {
		add(c.Config.FilterSubject)
	}
	if err := list.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	out := make([][2]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	return out, nil
}

type delivery struct {
	q   *Queue
	msg jetstream.Msg
	m   queue.Message
}

func (d *delivery) Message() queue.Message { return d.m }

func (d *delivery) Ack() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.msg.DoubleAck(ctx)
}

func (d *delivery) Done() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.msg.DoubleAck(ctx); err != nil {
		return err
	}
	d.q.dropBody(ctx, d.m.BodyRef)
	return nil
}

func (d *delivery) Retry(next queue.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.q.Enqueue(ctx, next); err != nil {
		d.msg.NakWithDelay(time.Second) // keep this attempt's message; try again
		return err
	}
	return d.msg.DoubleAck(ctx)
}

func (d *delivery) Defer(delay time.Duration) error { return d.msg.NakWithDelay(delay) }
func (d *delivery) InProgress() error               { return d.msg.InProgress() }

// claim is the value of an idempotency key.
type claim struct {
	CallID string    `json:"callId"`
	Queued bool      `json:"queued"`
	Since  time.Time `json:"since"`
}

// Claim creates the key only if it is free (compare-and-set on the bucket).
func (q *Queue) Claim(ctx context.Context, key, callID string) (string, bool, bool, error) {
	k := keyName(key)
	b, _ := json.Marshal(claim{CallID: callID, Since: time.Now()})
	if _, err := q.keys.Create(ctx, k, b); err == nil {
		return callID, true, false, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", false, false, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	c, _, err := q.readClaim(ctx, k)
	if err != nil {
		return "", false, false, err
	}
	return c.CallID, false, c.Queued, nil
}

func (q *Queue) readClaim(ctx context.Context, k string) (claim, uint64, error) {
	e, err := q.keys.Get(ctx, k)
	if err != nil {
		return claim{}, 0, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	var c claim
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return claim{}, 0, err
	}
	return c, e.Revision(), nil
}

// Queued marks the claim's invocation as stored.
func (q *Queue) Queued(ctx context.Context, key string) error {
	k := keyName(key)
	c, rev, err := q.readClaim(ctx, k)
	if err != nil {
		return err
	}
	c.Queued = true
	b, _ := json.Marshal(c)
	_, err = q.keys.Update(ctx, k, b, rev)
	return err
}

// TakeOver renews a stale pending claim by compare-and-set.
func (q *Queue) TakeOver(ctx context.Context, key string, stale time.Time) (bool, error) {
	k := keyName(key)
	c, rev, err := q.readClaim(ctx, k)
	if err != nil {
		return false, err
	}
	if c.Queued || c.Since.After(stale) {
		return false, nil
	}
	c.Since = time.Now()
	b, _ := json.Marshal(c)
	if _, err := q.keys.Update(ctx, k, b, rev); err != nil {
		return false, nil // another caller took it over first
	}
	return true, nil
}

// Release deletes a claim.
func (q *Queue) Release(ctx context.Context, key string) error {
	return q.keys.Purge(ctx, keyName(key))
}

// keyName makes any key a valid KV key: its sha256 in hex.
func keyName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
