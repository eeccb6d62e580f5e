package scaler

import (
	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/function"
)

var (
	descDesired = prometheus.NewDesc("nimbus_function_desired_replicas",
		"Replicas the autoscaler (or the API) asks for.", []string{"namespace", "function"}, nil)
	descReady = prometheus.NewDesc("nimbus_function_ready_replicas",
		"Ready replicas of the current revision, as the provider reports them.", []string{"namespace", "function"}, nil)
	descPanic = prometheus.NewDesc("nimbus_autoscaler_panic_mode",
		"1 while the autoscaler is in panic mode for the function.", []string{"namespace", "function"}, nil)
	// OpenFaaS's gateway_service_target_load (its Pro autoscaler's gauge).
	descTarget = prometheus.NewDesc("gateway_service_target_load",
		"Target load per replica (OpenFaaS name).", []string{"function_name", "scaling_type"}, nil)
)

// Collector exports every function's scaling state to Prometheus, read
// when scraped.
func (s *Scaler) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Scaler }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDesired, descReady, descPanic, descTarget} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	fns := make([]function.Function, 0, len(c.s.fns))
	for _, f := range c.s.fns {
		fns = append(fns, f.fn)
	}
	c.s.mu.Unlock()
	for _, fn := range fns {
		st, ok := c.s.Status(fn.Namespace, fn.Name)
		if !ok {
			continue
		}
		panic := 0.0
		if st.Panic {
			panic = 1
		}
		ch <- prometheus.MustNewConstMetric(descDesired, prometheus.GaugeValue, float64(st.Desired), fn.Namespace, fn.Name)
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, float64(st.Ready), fn.Namespace, fn.Name)
		ch <- prometheus.MustNewConstMetric(descPanic, prometheus.GaugeValue, panic, fn.Namespace, fn.Name)
		ofType := fn.Scale.Type
		if ofType == function.ScaleConcurrency {
			ofType = "capacity"
		}
		ch <- prometheus.MustNewConstMetric(descTarget, prometheus.GaugeValue, fn.Scale.TargetValue(), fn.Name+"."+fn.Namespace, ofType)
	}
}
