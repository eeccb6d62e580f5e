package calls

import (
	"container/list"
	"sync"
	"time"
)

// Index holds the records kept, newest last, bounded by count and age. It is
// safe for concurrent use.
type Index struct {
	maxRecords int
	maxAge     time.Duration

	mu    sync.RWMutex
	order *list.List // of *Record, oldest update first
	byID  map[string]*list.Element
}

// NewIndex returns an index that keeps at most maxRecords records, none
// older than maxAge (by their last update).
func NewIndex(maxRecords int, maxAge time.Duration) *Index {
	return &Index{maxRecords: maxRecords, maxAge: maxAge, order: list.New(), byID: map[string]*list.Element{}}
}

// Add takes a batch: each record replaces an earlier one of its call id,
// unless the earlier one is newer. now bounds the age of what is kept.
func (x *Index) Add(batch []Record, now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range batch {
		rec := batch[i]
		if e, ok := x.byID[rec.CallID]; ok {
			if e.Value.(*Record).Updated.After(rec.Updated) {
				continue
			}
			e.Value = &rec
			x.order.MoveToBack(e)
			continue
		}
		x.byID[rec.CallID] = x.order.PushBack(&rec)
	}
	x.prune(now)
}

func (x *Index) prune(now time.Time) {
	for e := x.order.Front(); e != nil; e = x.order.Front() {
		rec := e.Value.(*Record)
		if x.order.Len() <= x.maxRecords && now.Sub(rec.Updated) <= x.maxAge {
			return
		}
		x.order.Remove(e)
		delete(x.byID, rec.CallID)
	}
}

// Get returns the record of a call id.
func (x *Index) Get(callID string) (Record, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if e, ok := x.byID[callID]; ok {
		return *e.Value.(*Record), true
	}
	return Record{}, false
}

// List returns up to limit records, most recently updated first, of one
// function (name "" for all) in one namespace ("" for all).
func (x *Index) List(namespace, name string, limit int) []Record {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := []Record{}
	for e := x.order.Back(); e != nil && len(out) < limit; e = e.Prev() {
		rec := e.Value.(*Record)
		if (namespace == "" || rec.Namespace == namespace) && (name == "" || rec.Function == name) {
			out = append(out, *rec)
		}
	}
	return out
}

// Len is how many records are kept.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.order.Len()
}
