// Package controller keeps the data plane in step with the store: it watches
// function specs and applies every create, update and delete to its target
// (the gateway). It is level-triggered: on start it applies the whole current
// state, so a restart needs no redeploy.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"nimbus/internal/store"
)

// Target is what the controller drives; the gateway implements it.
type Target interface {
	Apply(rec store.Record) error
	Remove(namespace, name string)
}

// Controller watches a store and applies changes to a target.
type Controller struct {
	Store  store.Functions
	Target Target
	Logger *slog.Logger
}

// Run applies the current functions, reports ready by closing synced (once
// they are all applied), then applies changes until ctx ends. If the watch
// breaks it is re-established.
func (c *Controller) Run(ctx context.Context, synced chan<- struct{}) error {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	signalled := false
	for {
		err := c.watch(ctx, func() {
			if !signalled {
				signalled = true
				close(synced)
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("function watch ended; restarting it", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (c *Controller) watch(ctx context.Context, onSynced func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, initial, err := c.Store.Watch(ctx)
	if err != nil {
		return fmt.Errorf("watch functions: %w", err)
	}
	for {
		select {
		case <-initial:
			initial = nil
			// Everything sent before the marker has been applied, since
			// events are handled in order on this goroutine. Drain what is
			// already queued first so "synced" means applied.
			for drained := false; !drained; {
				select {
				case ev, ok := <-events:
					if !ok {
						return fmt.Errorf("watch closed")
					}
					c.apply(ev)
				default:
					drained = true
				}
			}
			onSynced()
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("watch closed")
			}
			c.apply(ev)
		}
	}
}

func (c *Controller) apply(ev store.Event) {
	fn := ev.Record.Function
	switch ev.Type {
	case store.EventPut:
		if err := c.Target.Apply(ev.Record); err != nil && c.Logger != nil {
			c.Logger.Error("cannot serve function", "function", fn.Key(), "err", err)
		}
	case store.EventDelete:
		c.Target.Remove(fn.Namespace, fn.Name)
	}
}

// Targets applies every change to each of several targets, in order.
type Targets []Target

// Apply applies rec to every target; the first error is returned, after all ran.
func (ts Targets) Apply(rec store.Record) error {
	var first error
	for _, t := range ts {
		if err := t.Apply(rec); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Remove removes a function from every target.
func (ts Targets) Remove(namespace, name string) {
	for _, t := range ts {
		t.Remove(namespace, name)
	}
}
