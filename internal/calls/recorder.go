package calls

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder buffers records and hands them to a Sink in batches.
type Recorder struct {
	sink       Sink
	flushEvery time.Duration
	maxPending int
	logger     *slog.Logger

	mu      sync.Mutex
	pending []Record
	kick    chan struct{}
	dropped atomic.Int64

	stop context.CancelFunc
	done chan struct{}
}

// RecorderOptions tune a Recorder.
type RecorderOptions struct {
	FlushEvery time.Duration // default 100ms
	MaxPending int           // default 50,000 records waiting for the sink
	Logger     *slog.Logger
}

// NewRecorder starts a recorder; Close flushes what it holds and stops it.
func NewRecorder(sink Sink, o RecorderOptions) *Recorder {
	if o.FlushEvery == 0 {
		o.FlushEvery = 100 * time.Millisecond
	}
	if o.MaxPending == 0 {
		o.MaxPending = 50_000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{sink: sink, flushEvery: o.FlushEvery, maxPending: o.MaxPending, logger: o.Logger,
		kick: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go r.loop(ctx)
	return r
}

// Record keeps rec for the next batch. It never blocks on the sink.
func (r *Recorder) Record(rec Record) {
	if rec.Updated.IsZero() {
		rec.Updated = time.Now().UTC()
	}
	r.mu.Lock()
	if len(r.pending) >= r.maxPending {
		r.mu.Unlock()
		r.dropped.Add(1)
		return
	}
	r.pending = append(r.pending, rec)
	full := len(r.pending) >= 1000
	r.mu.Unlock()
	if full {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Dropped is how many records were dropped because the sink fell behind.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// Close writes what is buffered (bounded by ctx) and stops.
func (r *Recorder) Close(ctx context.Context) {
	r.stop()
	<-r.done
	r.flush(ctx)
}

func (r *Recorder) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r.flush(fctx)
		cancel()
	}
}

// flush hands the buffer to the sink, 1000 records per batch; a batch the
// sink refuses goes back to the front of the buffer for the next flush.
func (r *Recorder) flush(ctx context.Context) {
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), 1000)
		if err := r.sink.Append(ctx, batch[:n]); err != nil {
			r.logger.Warn("call records not stored yet; keeping them for the next try", "records", len(batch), "err", err)
			r.mu.Lock()
			r.pending = append(batch, r.pending...)
			if over := len(r.pending) - r.maxPending; over > 0 {
				r.pending = r.pending[over:]
				r.dropped.Add(int64(over))
			}
			r.mu.Unlock()
			return
		}
		batch = batch[n:]
	}
}
