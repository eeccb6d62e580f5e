package openfaas

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/reqbody"
	"nimbus/internal/store"
)

// OpenFaaS scaling labels (gateway/scaling/ranges.go) and their defaults.
const (
	labelMin          = "com.openfaas.scale.min"
	labelMax          = "com.openfaas.scale.max"
	labelZero         = "com.openfaas.scale.zero"
	labelZeroDuration = "com.openfaas.scale.zero-duration"
	labelType         = "com.openfaas.scale.type"
	labelTarget       = "com.openfaas.scale.target"
	labelProportion   = "com.openfaas.scale.target-proportion"
	// labelStableWindow is nimbus's own: OpenFaaS has no label for the
	// autoscaler's window.
	labelStableWindow = "nimbus.dev/scale.stable-window"
	// OpenFaaS's defaults for the autoscaling labels.
	defaultTarget     = 50
	defaultProportion = 0.9
	defaultMin        = 1
	defaultMax        = 20
)

// maxBody bounds a request body of this API.
const maxBody = 1 << 20

// errBodyTimeout: the body did not arrive by the server's deadline.
var errBodyTimeout = errors.New("the request body did not arrive in time (the server's body deadline): send it whole, or faster")

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, reqbody.ErrTimeout) {
			return errBodyTimeout
		}
		return fmt.Errorf("the body is not valid JSON for this request: %v", err)
	}
	return nil
}

// badBody answers a body decode failed on: 408 if it never arrived, else 400.
func badBody(w http.ResponseWriter, err error) {
	if errors.Is(err, errBodyTimeout) {
		w.Header().Set("Connection", "close")
		http.Error(w, err.Error(), http.StatusRequestTimeout)
		return
	}
	http.Error(w, err.Error(), http.StatusBadRequest)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ToFunction maps a FunctionDeployment onto a nimbus spec. OpenFaaS's
// semantics are kept: at least one replica unless com.openfaas.scale.zero is
// "true", health on /_/health (what its watchdogs serve), fprocess from
// envProcess.
func ToFunction(d FunctionDeployment) (function.Function, error) {
	if d.Service == "" {
		return function.Function{}, errors.New("service is required")
	}
	if d.Image == "" {
		return function.Function{}, errors.New("image is required")
	}
	fn := function.Function{
		// No runtime: the platform's for images (docker, or kube with
		// nimbus up --provider kube).
		Name: d.Service, Namespace: namespaceOf(d.Namespace),
		Protocol: function.ProtocolHTTP, Image: d.Image, HealthPath: "/_/health",
		ReadOnlyRootFilesystem: d.ReadOnlyRootFilesystem, Secrets: d.Secrets,
	}
	if len(d.EnvVars) > 0 || d.EnvProcess != "" {
		fn.Env = map[string]string{}
		for k, v := range d.EnvVars {
			fn.Env[k] = v
		}
		if d.EnvProcess != "" {
			fn.Env["fprocess"] = d.EnvProcess
		}
	}
	if d.Labels != nil {
		fn.Labels = *d.Labels
	}
	if d.Annotations != nil {
		fn.Annotations = *d.Annotations
	}
	if d.Limits != nil {
		fn.Limits = function.Resources{Memory: d.Limits.Memory, CPU: d.Limits.CPU}
	}
	if d.Requests != nil {
		fn.Requests = function.Resources{Memory: d.Requests.Memory, CPU: d.Requests.CPU}
	}
	min, max := defaultMin, defaultMax
	var err error
	if v, ok := fn.Labels[labelMin]; ok {
		if min, err = strconv.Atoi(v); err != nil || min < 0 {
			return fn, fmt.Errorf("label %s=%q is not a count of replicas", labelMin, v)
		}
	}
	if v, ok := fn.Labels[labelMax]; ok {
		if max, err = strconv.Atoi(v); err != nil || max < 1 {
			return fn, fmt.Errorf("label %s=%q is not a count of replicas", labelMax, v)
		}
	}
	if fn.Labels[labelZero] == "true" {
		min = 0
	}
	if v, ok := fn.Labels[labelZeroDuration]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fn, fmt.Errorf("label %s=%q is not a duration such as 15m", labelZeroDuration, v)
		}
		fn.Scale.IdleTimeout = function.Duration(d)
	}
	fn.Scale.Min, fn.Scale.Max = min, max
	return fn, scaleTarget(&fn)
}

// scaleTarget maps OpenFaaS's autoscaling labels onto the spec: type rps,
// capacity (requests in flight: nimbus's concurrency) or cpu, a target per
// replica (50 by default) and a target proportion (0.9 by default); and
// nimbus's nimbus.dev/scale.stable-window.
func scaleTarget(fn *function.Function) error {
	if v, ok := fn.Labels[labelStableWindow]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("label %s=%q is not a duration such as 60s", labelStableWindow, v)
		}
		fn.Scale.StableWindow = function.Duration(d)
	}
	typ, ok := fn.Labels[labelType]
	if !ok {
		_, t := fn.Labels[labelTarget]
		_, p := fn.Labels[labelProportion]
		if !t && !p {
			return nil
		}
		typ = "rps" // OpenFaaS's default type
	}
	switch typ {
	case "rps":
		fn.Scale.Type = function.ScaleRPS
	case "capacity":
		fn.Scale.Type = function.ScaleConcurrency
	case "cpu":
		fn.Scale.Type = function.ScaleCPU
	default:
		return fmt.Errorf("label %s=%q is not a scaling type: use rps, capacity or cpu", labelType, typ)
	}
	target := float64(defaultTarget)
	if v, ok := fn.Labels[labelTarget]; ok {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil || !(t > 0) {
			return fmt.Errorf("label %s=%q cannot be met: use a load per replica above 0", labelTarget, v)
		}
		target = t
	}
	fn.Scale.Target = &target
	fn.Scale.TargetUtilization = defaultProportion
	if v, ok := fn.Labels[labelProportion]; ok {
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || !(p > 0 && p <= 1) {
			return fmt.Errorf("label %s=%q is not a proportion: use a number above 0, at most 1", labelProportion, v)
		}
		fn.Scale.TargetUtilization = p
	}
	if fn.Scale.Type == function.ScaleConcurrency && fn.Scale.MaxConcurrency == 0 {
		// A capacity target above nimbus's default maxConcurrency must be
		// reachable.
		fn.Scale.MaxConcurrency = max(function.DefaultMaxConcurrency, int(math.Ceil(target)))
	}
	return nil
}

// toStatus shows a nimbus function as OpenFaaS does.
func toStatus(rec store.Record, st gateway.Status) FunctionStatus {
	fn := rec.Function
	s := FunctionStatus{
		Name: fn.Name, Image: fn.Image, Namespace: ofNamespace(fn.Namespace), Secrets: fn.Secrets,
		ReadOnlyRootFilesystem: fn.ReadOnlyRootFilesystem,
		InvocationCount:        float64(st.Invocations),
		Replicas:               uint64(st.TotalInstances),
		AvailableReplicas:      uint64(st.ReadyInstances),
		CreatedAt:              rec.Updated,
	}
	if len(fn.Env) > 0 {
		s.EnvVars = map[string]string{}
		for k, v := range fn.Env {
			if k == "fprocess" {
				s.EnvProcess = v
				continue
			}
			s.EnvVars[k] = v
		}
	}
	// Always objects, as faas-netes gives them (clients dereference them),
	// with faas-netes' faas_function label.
	labels := map[string]string{"faas_function": fn.Name}
	for k, v := range fn.Labels {
		labels[k] = v
	}
	annotations := map[string]string{}
	for k, v := range fn.Annotations {
		annotations[k] = v
	}
	s.Labels, s.Annotations = &labels, &annotations
	if fn.Limits != (function.Resources{}) {
		s.Limits = &FunctionResources{Memory: fn.Limits.Memory, CPU: fn.Limits.CPU}
	}
	if fn.Requests != (function.Resources{}) {
		s.Requests = &FunctionResources{Memory: fn.Requests.Memory, CPU: fn.Requests.CPU}
	}
	return s
}
