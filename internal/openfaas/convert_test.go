package openfaas

import (
	"strings"
	"testing"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/store"
)

func TestToFunctionKeepsOpenFaaSSemantics(t *testing.T) {
	labels := map[string]string{"com.openfaas.scale.min": "2", "com.openfaas.scale.max": "7"}
	fn, err := ToFunction(FunctionDeployment{Service: "f", Image: "img:1", EnvProcess: "cat", Labels: &labels,
		Limits: &FunctionResources{Memory: "128Mi"}})
	if err != nil {
		t.Fatal(err)
	}
	if fn.Runtime != "" || fn.Namespace != "default" || fn.HealthPath != "/_/health" ||
		fn.Env["fprocess"] != "cat" || fn.Scale.Min != 2 || fn.Scale.Max != 7 || fn.Limits.Memory != "128Mi" {
		t.Fatalf("%+v", fn)
	}
	// Without labels: OpenFaaS keeps one replica.
	fn, _ = ToFunction(FunctionDeployment{Service: "f", Image: "img:1"})
	if fn.Scale.Min != 1 {
		t.Fatalf("default min %d, want 1", fn.Scale.Min)
	}
	zero := map[string]string{"com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "3m"}
	fn, _ = ToFunction(FunctionDeployment{Service: "f", Image: "img:1", Labels: &zero})
	if fn.Scale.Min != 0 || time.Duration(fn.Scale.IdleTimeout) != 3*time.Minute {
		t.Fatalf("scale to zero: %+v", fn.Scale)
	}
	for name, d := range map[string]FunctionDeployment{
		"no service": {Image: "x"},
		"no image":   {Service: "f"},
		"bad min":    {Service: "f", Image: "x", Labels: &map[string]string{"com.openfaas.scale.min": "many"}},
	} {
		if _, err := ToFunction(d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestToStatusRoundTrips(t *testing.T) {
	fn := function.Function{Name: "f", Namespace: "ns", Image: "img:1", Env: map[string]string{"fprocess": "cat", "A": "1"},
		Labels: map[string]string{"l": "v"}, Limits: function.Resources{CPU: "1"}}
	s := toStatus(store.Record{Function: fn}, gateway.Status{Invocations: 5, ReadyInstances: 1, TotalInstances: 2})
	if s.EnvProcess != "cat" || s.EnvVars["A"] != "1" || s.EnvVars["fprocess"] != "" || s.InvocationCount != 5 ||
		s.Replicas != 2 || s.AvailableReplicas != 1 || (*s.Labels)["l"] != "v" || s.Limits.CPU != "1" || s.Requests != nil {
		t.Fatalf("%+v", s)
	}
}

func TestNextReplicas(t *testing.T) {
	cases := []struct {
		firing                           bool
		current, base, top, factor, want int
	}{
		{true, 1, 1, 20, 10, 3},   // step ceil(20×10/100)=2
		{true, 19, 1, 20, 10, 20}, // capped at max
		{true, 0, 0, 5, 10, 1},    // step at least 1
		{false, 7, 1, 20, 10, 1},  // resolved: back to min
		{false, 7, 0, 20, 10, 0},  // to zero when scale.zero
	}
	for _, c := range cases {
		if got := NextReplicas(c.firing, c.current, c.base, c.top, c.factor); got != c.want {
			t.Errorf("%+v: got %d", c, got)
		}
	}
}

// TestScaleLabels: OpenFaaS's autoscaling labels map onto the spec's scale
// target, and labels that cannot be met are refused naming the label.
func TestScaleLabels(t *testing.T) {
	deploy := func(labels map[string]string) (function.Function, error) {
		return ToFunction(FunctionDeployment{Service: "f", Image: "img:1", Labels: &labels})
	}
	fn, err := deploy(map[string]string{"com.openfaas.scale.type": "rps", "com.openfaas.scale.target": "5"})
	if err != nil || fn.Scale.Type != function.ScaleRPS || fn.Scale.Target == nil || *fn.Scale.Target != 5 || fn.Scale.TargetUtilization != 0.9 {
		t.Fatalf("rps target 5: %+v %v", fn.Scale, err)
	}
	if v := fn.WithDefaults().Scale.TargetValue(); v != 4.5 {
		t.Errorf("target value %g, want 5 × 0.9", v)
	}
	fn, err = deploy(map[string]string{"com.openfaas.scale.type": "capacity", "com.openfaas.scale.target-proportion": "0.5"})
	if err != nil || fn.Scale.Type != function.ScaleConcurrency || *fn.Scale.Target != 50 || fn.Scale.TargetUtilization != 0.5 {
		t.Fatalf("capacity: %+v %v", fn.Scale, err)
	}
	fn, err = deploy(map[string]string{"com.openfaas.scale.type": "cpu", "com.openfaas.scale.target": "300"})
	if err != nil || fn.Scale.Type != function.ScaleCPU || *fn.Scale.Target != 300 {
		t.Fatalf("cpu: %+v %v", fn.Scale, err)
	}
	for label, value := range map[string]string{
		"com.openfaas.scale.type":              "memory",
		"com.openfaas.scale.target":            "0",
		"com.openfaas.scale.target-proportion": "1.5",
	} {
		if _, err := deploy(map[string]string{label: value}); err == nil || !strings.Contains(err.Error(), label) {
			t.Errorf("%s=%s: %v", label, value, err)
		}
	}
}

func TestStableWindowLabel(t *testing.T) {
	labels := map[string]string{"nimbus.dev/scale.stable-window": "6s"}
	fn, err := ToFunction(FunctionDeployment{Service: "f", Image: "img:1", Labels: &labels})
	if err != nil || fn.Scale.StableWindow != function.Duration(6*time.Second) {
		t.Fatalf("%+v %v", fn.Scale, err)
	}
	labels["nimbus.dev/scale.stable-window"] = "soon"
	if _, err := ToFunction(FunctionDeployment{Service: "f", Image: "img:1", Labels: &labels}); err == nil || !strings.Contains(err.Error(), "stable-window") {
		t.Fatalf("bad window: %v", err)
	}
}
