// Package scalertest wires a gateway, a local provider per driver and a
// scaler together as nimbus up does, for the tests of the packages that
// invoke functions through a gateway.
package scalertest

import (
	"context"
	"testing"

	"nimbus/internal/driver"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/provider"
	"nimbus/internal/scaler"
	"nimbus/internal/store"
)

// Stack is a gateway with its providers and scaler. It is a
// controller.Target: Apply and Remove reach all three in nimbus's order.
type Stack struct {
	Gateway   *gateway.Gateway
	Scaler    *scaler.Scaler
	Providers map[string]provider.Provider
}

// New builds a stack on drivers; go (the gateway's options) gets Runtimes,
// Activate and Burst, lo (each provider's) its Driver, Watch and Drain. The
// scaler runs until the test ends, when everything is closed.
func New(t testing.TB, drivers map[string]driver.Driver, gopts gateway.Options, lo provider.LocalOptions) *Stack {
	t.Helper()
	s := &Stack{Providers: map[string]provider.Provider{}}
	gopts.Runtimes = map[string]bool{}
	gopts.Activate = func(fn function.Function, active int) { s.Scaler.Activate(fn, active) }
	gopts.Burst = func(fn function.Function, want int) { s.Scaler.Burst(fn, want) }
	for name := range drivers {
		gopts.Runtimes[name] = true
	}
	s.Gateway = gateway.New(gopts)
	for name, drv := range drivers {
		o := lo
		o.Driver, o.Watch, o.Drain = drv, s.Gateway.SetState, s.Gateway.Drain
		s.Providers[name] = provider.NewLocal(o)
	}
	s.Scaler = scaler.New(scaler.Options{Providers: s.Providers, Load: s.Gateway.TakeLoad})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Scaler.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Gateway.Close(context.Background())
		for _, p := range s.Providers {
			p.Close(context.Background())
		}
	})
	return s
}

// Apply applies a function to the gateway, then the scaler.
func (s *Stack) Apply(rec store.Record) error {
	if err := s.Gateway.Apply(rec); err != nil {
		return err
	}
	return s.Scaler.Apply(rec)
}

// Remove removes a function from the gateway, then the scaler.
func (s *Stack) Remove(namespace, name string) {
	s.Gateway.Remove(namespace, name)
	s.Scaler.Remove(namespace, name)
}
