// Package natsstore is the NATS JetStream backend of store.Store: function
// specs in a KV bucket, packages in an object store named by digest, log lines
// in a stream bounded by age and size.
package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/function"
	"nimbus/internal/store"
)

var _ store.Store = (*Store)(nil)

// Bucket and stream names. Changing them orphans existing data.
const (
	functionsBucket = "nimbus_functions"
	packagesBucket  = "nimbus_packages"
	logsStream      = "NIMBUS_LOGS"
	logsSubject     = "nimbus.logs"
)

// Options bound what the store keeps.
type Options struct {
	LogMaxAge   time.Duration // default 7 days
	LogMaxBytes int64         // default 256 MiB
	Replicas    int           // default 1
}

// Store is a store.Store on JetStream.
type Store struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	obs     jetstream.ObjectStore
	log     jetstream.Stream
	secrets jetstream.KeyValue
	keys    jetstream.KeyValue
	// versions holds store.VersionInfo by "NAMESPACE.NAME".
	versions jetstream.KeyValue
}

// Open creates or binds the buckets and stream nimbus uses.
func Open(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, o Options) (*Store, error) {
	if o.LogMaxAge == 0 {
		o.LogMaxAge = 7 * 24 * time.Hour
	}
	if o.LogMaxBytes == 0 {
		o.LogMaxBytes = 256 << 20
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: functionsBucket, Description: "nimbus function specs",
		History: 10, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("functions bucket: %w", err)
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: packagesBucket, Description: "nimbus function packages by sha256",
		Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("packages bucket: %w", err)
	}
	ls, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: logsStream, Subjects: []string{logsSubject + ".>"},
		Storage: jetstream.FileStorage, Replicas: o.Replicas,
		MaxAge: o.LogMaxAge, MaxBytes: o.LogMaxBytes, Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("logs stream: %w", err)
	}
	sec, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: secretsBucket, Description: "nimbus secrets (values never leave through the APIs)",
		History: 1, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("secrets bucket: %w", err)
	}
	keys, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: keysBucket, Description: "nimbus access keys for the AWS-shaped APIs",
		History: 1, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("keys bucket: %w", err)
	}
	versions, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: versionsBucket, Description: "nimbus functions' published version counters and aliases",
		History: 1, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("versions bucket: %w", err)
	}
	return &Store{nc: nc, js: js, kv: kv, obs: obs, log: ls, secrets: sec, keys: keys, versions: versions}, nil
}

// Ping reports whether JetStream answers.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return nil
}

// A key is "namespace.name": both are DNS labels, so neither holds a dot.
func kvKey(namespace, name string) string { return namespace + "." + name }

func encode(fn function.Function) ([]byte, error) { return json.Marshal(fn) }

func decode(e jetstream.KeyValueEntry) (store.Record, error) {
	var fn function.Function
	if err := json.Unmarshal(e.Value(), &fn); err != nil {
		return store.Record{}, fmt.Errorf("decode %s: %w", e.Key(), err)
	}
	return store.Record{Function: fn, Revision: e.Revision(), Updated: e.Created()}, nil
}

func wrap(err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted),
		errors.Is(err, jetstream.ErrObjectNotFound), errors.Is(err, jetstream.ErrMsgNotFound):
		return fmt.Errorf("%w: %v", store.ErrNotFound, err)
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("%w: %v", store.ErrExists, err)
	case isWrongSequence(err):
		return fmt.Errorf("%w: %v", store.ErrConflict, err)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Create stores fn if its key is free.
func (s *Store) Create(ctx context.Context, fn function.Function) (store.Record, error) {
	b, err := encode(fn)
	if err != nil {
		return store.Record{}, err
	}
	rev, err := s.kv.Create(ctx, kvKey(fn.Namespace, fn.Name), b)
	if err != nil {
		return store.Record{}, wrap(err)
	}
	return store.Record{Function: fn, Revision: rev, Updated: time.Now()}, nil
}

// Update replaces fn at revision rev.
func (s *Store) Update(ctx context.Context, fn function.Function, rev uint64) (store.Record, error) {
	b, err := encode(fn)
	if err != nil {
		return store.Record{}, err
	}
	newRev, err := s.kv.Update(ctx, kvKey(fn.Namespace, fn.Name), b, rev)
	if err != nil {
		if _, gerr := s.Get(ctx, fn.Namespace, fn.Name); errors.Is(gerr, store.ErrNotFound) {
			return store.Record{}, gerr
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
			return store.Record{}, fmt.Errorf("%w: %s is no longer at revision %d", store.ErrConflict, fn.Key(), rev)
		}
		return store.Record{}, wrap(err)
	}
	return store.Record{Function: fn, Revision: newRev, Updated: time.Now()}, nil
}

// Get returns the current record.
func (s *Store) Get(ctx context.Context, namespace, name string) (store.Record, error) {
	e, err := s.kv.Get(ctx, kvKey(namespace, name))
	if err != nil {
		return store.Record{}, wrap(err)
	}
	return decode(e)
}

// Revisions returns the bucket's history of the function since its last
// delete, newest first (the bucket keeps 10 entries a key).
func (s *Store) Revisions(ctx context.Context, namespace, name string) ([]store.Record, error) {
	hist, err := s.kv.History(ctx, kvKey(namespace, name))
	if err != nil {
		return nil, wrap(err)
	}
	var out []store.Record
	for i := len(hist) - 1; i >= 0; i-- {
		e := hist[i]
		if e.Operation() != jetstream.KeyValuePut {
			break // a delete or purge: what is before it is another function
		}
		r, err := decode(e)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: function %s.%s", store.ErrNotFound, namespace, name)
	}
	return out, nil
}

// List returns the functions of a namespace, or all for "".
func (s *Store) List(ctx context.Context, namespace string) ([]store.Record, error) {
	var out []store.Record
	err := current(ctx, s.kv, namespace, false, func(e jetstream.KeyValueEntry) error {
		r, err := decode(e)
		out = append(out, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Function.Key() < out[j].Function.Key() })
	return out, nil
}

// current calls fn for every live key of a namespace ("" for all) in a
// bucket keyed "namespace.name", with values unless metaOnly.
func current(ctx context.Context, kv jetstream.KeyValue, namespace string, metaOnly bool, fn func(jetstream.KeyValueEntry) error) error {
	filter := ">"
	if namespace != "" {
		filter = namespace + ".*"
	}
	opts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if metaOnly {
		opts = append(opts, jetstream.MetaOnly())
	}
	w, err := kv.Watch(ctx, filter, opts...)
	if err != nil {
		return wrap(err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return wrap(ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("%w: watch closed", store.ErrUnavailable)
			}
			if e == nil {
				return nil // nil marks the end of the current values
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// Delete removes a function, optionally only at revision rev.
func (s *Store) Delete(ctx context.Context, namespace, name string, rev uint64) error {
	cur, err := s.Get(ctx, namespace, name)
	if err != nil {
		return err
	}
	if rev != 0 && cur.Revision != rev {
		return fmt.Errorf("%w: %s is at revision %d, not %d", store.ErrConflict, function.Key(namespace, name), cur.Revision, rev)
	}
	if err := s.kv.Delete(ctx, kvKey(namespace, name), jetstream.LastRevision(cur.Revision)); err != nil {
		return wrap(err)
	}
	return nil
}

// Watch streams the current functions, then every change.
func (s *Store) Watch(ctx context.Context) (<-chan store.Event, <-chan struct{}, error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, nil, wrap(err)
	}
	out := make(chan store.Event, 64)
	initial := make(chan struct{})
	go func() {
		defer close(out)
		defer w.Stop()
		initialDone := false
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					if !initialDone {
						initialDone = true
						close(initial)
					}
					continue
				}
				ev, ok := toEvent(e)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, initial, nil
}

func toEvent(e jetstream.KeyValueEntry) (store.Event, bool) {
	if e.Operation() != jetstream.KeyValuePut {
		ns, name, _ := strings.Cut(e.Key(), ".")
		return store.Event{Type: store.EventDelete, Record: store.Record{
			Function: function.Function{Namespace: ns, Name: name}, Revision: e.Revision(), Updated: e.Created(),
		}}, true
	}
	r, err := decode(e)
	if err != nil {
		ns, name, _ := strings.Cut(e.Key(), ".")
		return store.Event{Type: store.EventPut, Err: err, Record: store.Record{
			Function: function.Function{Namespace: ns, Name: name}, Revision: e.Revision(), Updated: e.Created(),
		}}, true
	}
	return store.Event{Type: store.EventPut, Record: r}, true
}
