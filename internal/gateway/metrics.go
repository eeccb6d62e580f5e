package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/function"
)

// Metrics are the gateway's Prometheus collectors.
type Metrics struct {
	invocations      *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	coldStarts       *prometheus.CounterVec
	coldStartSeconds *prometheus.HistogramVec
	instances        *prometheus.GaugeVec
}

// NewMetrics registers the gateway's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"namespace", "function"}
	m := &Metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_invocations_total", Help: "Function invocations by status code.",
		}, append(labels, "code")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nimbus_invocation_duration_seconds", Help: "Time from request to response through the gateway.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, labels),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_cold_starts_total", Help: "Instances started because requests were waiting.",
		}, labels),
		coldStartSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nimbus_cold_start_duration_seconds", Help: "Time from starting an instance to its being ready.",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, labels),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nimbus_instances", Help: "Ready instances by function.",
		}, labels),
	}
	reg.MustRegister(m.invocations, m.duration, m.coldStarts, m.coldStartSeconds, m.instances)
	return m
}

// fnMetrics are one function's collectors, looked up once, not per request.
type fnMetrics struct {
	parent           *Metrics
	ns, name         string
	duration         prometheus.Observer
	coldStarts       prometheus.Counter
	coldStartSeconds prometheus.Observer
	instances        prometheus.Gauge
	codes            sync.Map // int → prometheus.Counter
}

func (m *Metrics) forFunction(fn function.Function) *fnMetrics {
	return &fnMetrics{
		parent: m, ns: fn.Namespace, name: fn.Name,
		duration:         m.duration.WithLabelValues(fn.Namespace, fn.Name),
		coldStarts:       m.coldStarts.WithLabelValues(fn.Namespace, fn.Name),
		coldStartSeconds: m.coldStartSeconds.WithLabelValues(fn.Namespace, fn.Name),
		instances:        m.instances.WithLabelValues(fn.Namespace, fn.Name),
	}
}

func (f *fnMetrics) observe(status int, took time.Duration) {
	c, ok := f.codes.Load(status)
	if !ok {
		c, _ = f.codes.LoadOrStore(status, f.parent.invocations.WithLabelValues(f.ns, f.name, strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
	f.duration.Observe(took.Seconds())
}

// forget drops a deleted function's series.
func (f *fnMetrics) forget() {
	m := f.parent
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.invocations, m.duration, m.coldStarts, m.coldStartSeconds, m.instances} {
		v.DeletePartialMatch(prometheus.Labels{"namespace": f.ns, "function": f.name})
	}
}
