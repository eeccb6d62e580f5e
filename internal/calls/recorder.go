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
	then    map[int]func() // by index in pending: run once that record is stored
	kick    chan struct{}
	dropped atomic.Int64
	failing bool // the last flush failed (logged once, until one succeeds)

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
func (r *Recorder) Record(rec Record) { r.RecordThen(rec, nil) }

// RecordThen keeps rec for the next batch and calls stored (on the
// recorder's goroutine; it must not block) once the batch holding it is
// stored — or at once if the record had to be dropped. An async call is
// settled in its queue only then, so a crash before its record is stored
// brings the call back instead of leaving its record behind.
func (r *Recorder) RecordThen(rec Record, stored func()) {
	if rec.Updated.IsZero() {
		rec.Updated = time.Now().UTC()
	}
	r.mu.Lock()
	if len(r.pending) >= r.maxPending {
		r.mu.Unlock()
		r.dropped.Add(1)
		if stored != nil {
			stored()
		}
		return
	}
	if stored != nil {
		if r.then == nil {
			r.then = map[int]func(){}
		}
		r.then[len(r.pending)] = stored
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
	batch, then := r.pending, r.then
	r.pending, r.then = nil, nil
	r.mu.Unlock()
	for off := 0; off < len(batch); {
		n := min(len(batch)-off, 1000)
		if err := r.sink.Append(ctx, batch[off:off+n]); err != nil {
			if !r.failing {
				r.logger.Warn("call records not stored yet; keeping them for the next tries", "records", len(batch)-off, "err", err)
				r.failing = true
			}
			r.requeue(batch[off:], then, off)
			return
		}
		if r.failing {
			r.logger.Info("call records are stored again")
			r.failing = false
		}
		for i := off; i < off+n; i++ {
			if f := then[i]; f != nil {
				f()
			}
		}
		off += n
	}
}

// requeue puts records the sink refused back in front of the buffer, with
// what waits for them; past maxPending the oldest are dropped (and what
// waits for them runs, as for any dropped record).
func (r *Recorder) requeue(rest []Record, then map[int]func(), off int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	merged := map[int]func(){}
	for i := range rest {
		if f := then[off+i]; f != nil {
			merged[i] = f
		}
	}
	for i, f := range r.then {
		merged[len(rest)+i] = f
	}
	r.pending = append(append([]Record(nil), rest...), r.pending...)
	r.then = merged
	if over := len(r.pending) - r.maxPending; over > 0 {
		for i := range over {
			if f := r.then[i]; f != nil {
				f()
			}
		}
		shifted := map[int]func(){}
		for i, f := range r.then {
			if i >= over {
				shifted[i-over] = f
			}
		}
		r.pending, r.then = r.pending[over:], shifted
		r.dropped.Add(int64(over))
	}
}
