package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/function"
	"nimbus/internal/series"
)

// The recent series kept in memory (for the web UI): 15 minutes in steps
// of 10 s; a function's summary covers its last 5 minutes.
const (
	RecentStep    = 10 * time.Second
	RecentSteps   = 90
	SummaryWindow = 5 * time.Minute
)

// Metrics are the gateway's Prometheus collectors.
type Metrics struct {
	invocations      *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	coldStarts       *prometheus.CounterVec
	coldStartSeconds *prometheus.HistogramVec
	instances        *prometheus.GaugeVec
	// OpenFaaS's names and labels (gateway/metrics/metrics.go), so its
	// dashboards and alert rules work unchanged.
	ofInvocations *prometheus.CounterVec
	ofSeconds     *prometheus.HistogramVec
	ofStarted     *prometheus.CounterVec
	ofReplicas    *prometheus.GaugeVec
	// recent is the same events' last minutes, per function.
	recent *series.Ring
}

// NewMetrics registers the gateway's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"namespace", "function"}
	m := &Metrics{
		recent: series.New(RecentStep, RecentSteps),
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
	m.ofInvocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_function_invocation_total", Help: "Function invocations (OpenFaaS name).",
	}, []string{"function_name", "code"})
	m.ofSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gateway_functions_seconds", Help: "Function time taken (OpenFaaS name).",
	}, []string{"function_name", "code"})
	m.ofStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_function_invocation_started", Help: "Function invocations started (OpenFaaS name).",
	}, []string{"function_name"})
	m.ofReplicas = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gateway_service_count", Help: "Ready replicas of a function (OpenFaaS name).",
	}, []string{"function_name"})
	reg.MustRegister(m.invocations, m.duration, m.coldStarts, m.coldStartSeconds, m.instances,
		m.ofInvocations, m.ofSeconds, m.ofStarted, m.ofReplicas)
	return m
}

// fnMetrics are one function's collectors, looked up once, not per request.
type fnMetrics struct {
	parent           *Metrics
	ns, name         string
	recent           *series.Fn
	duration         prometheus.Observer
	coldStarts       prometheus.Counter
	coldStartSeconds prometheus.Observer
	instances        prometheus.Gauge
	ofReplicas       prometheus.Gauge   // OpenFaaS
	started          prometheus.Counter // OpenFaaS
	ofName           string             // "name.namespace", as OpenFaaS labels functions
	codes            sync.Map           // int → *codeMetrics
}

type codeMetrics struct {
	native, of prometheus.Counter
	ofSeconds  prometheus.Observer
}

func (m *Metrics) forFunction(fn function.Function) *fnMetrics {
	of := fn.Name + "." + fn.Namespace
	return &fnMetrics{
		parent: m, ns: fn.Namespace, name: fn.Name, recent: m.recent.For(fn.Key()), ofName: of,
		duration:         m.duration.WithLabelValues(fn.Namespace, fn.Name),
		coldStarts:       m.coldStarts.WithLabelValues(fn.Namespace, fn.Name),
		coldStartSeconds: m.coldStartSeconds.WithLabelValues(fn.Namespace, fn.Name),
		instances:        m.instances.WithLabelValues(fn.Namespace, fn.Name),
		ofReplicas:       m.ofReplicas.WithLabelValues(of),
		started:          m.ofStarted.WithLabelValues(of),
	}
}

// setInstances sets nimbus's and OpenFaaS's instance gauges together.
func (f *fnMetrics) setInstances(n int) {
	f.instances.Set(float64(n))
	f.ofReplicas.Set(float64(n))
	f.recent.Ready(n, time.Now())
}

// coldStart counts a start requests waited for, which took took.
func (f *fnMetrics) coldStart(took time.Duration) {
	f.coldStarts.Inc()
	f.coldStartSeconds.Observe(took.Seconds())
	f.recent.ColdStart(time.Now())
}

func (f *fnMetrics) observe(status int, took time.Duration) {
	v, ok := f.codes.Load(status)
	if !ok {
		code := strconv.Itoa(status)
		v, _ = f.codes.LoadOrStore(status, &codeMetrics{
			native:    f.parent.invocations.WithLabelValues(f.ns, f.name, code),
			of:        f.parent.ofInvocations.WithLabelValues(f.ofName, code),
			ofSeconds: f.parent.ofSeconds.WithLabelValues(f.ofName, code),
		})
	}
	c := v.(*codeMetrics)
	secs := took.Seconds()
	c.native.Inc()
	c.of.Inc()
	c.ofSeconds.Observe(secs)
	f.duration.Observe(secs)
	f.recent.Observe(status, took, time.Now())
}

// forget drops a deleted function's series.
func (f *fnMetrics) forget() {
	m := f.parent
	m.recent.Forget(function.Key(f.ns, f.name))
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.invocations, m.duration, m.coldStarts, m.coldStartSeconds, m.instances} {
		v.DeletePartialMatch(prometheus.Labels{"namespace": f.ns, "function": f.name})
	}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.ofInvocations, m.ofSeconds, m.ofStarted, m.ofReplicas} {
		v.DeletePartialMatch(prometheus.Labels{"function_name": f.ofName})
	}
}
