package function

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func valid() Function {
	return Function{Name: "hello", Command: []string{"./hello"}, Package: digest}.WithDefaults()
}

func TestDefaults(t *testing.T) {
	f := valid()
	if f.Namespace != "default" || f.Runtime != "process" || f.Protocol != "http" {
		t.Fatalf("defaults not applied: %+v", f)
	}
	if f.Scale.Max != DefaultMaxInstances || f.Scale.MaxConcurrency != DefaultMaxConcurrency || time.Duration(f.Timeout) != DefaultTimeout {
		t.Fatalf("scale defaults not applied: %+v", f.Scale)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("valid spec rejected: %v", err)
	}
	if g := (Function{Name: "x", Scale: Scale{Min: 9}}).WithDefaults(); g.Scale.Max != 9 {
		t.Fatalf("max should rise to min, got %d", g.Scale.Max)
	}
}

func TestNames(t *testing.T) {
	good := []string{"a", "hello", "hello-world", "a1", strings.Repeat("a", 63)}
	bad := []string{"", "A", "1a", "-a", "a-", "a_b", "a.b", strings.Repeat("a", 64), "héllo"}
	for _, n := range good {
		if err := ValidateName("name", n); err != nil {
			t.Errorf("%q rejected: %v", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateName("name", n); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := map[string]func(*Function){
		"name":                    func(f *Function) { f.Name = "Bad_Name" },
		"namespace":               func(f *Function) { f.Namespace = "NS" },
		"runtime":                 func(f *Function) { f.Runtime = "vm" },
		"protocol":                func(f *Function) { f.Protocol = "grpc" },
		"command":                 func(f *Function) { f.Command = nil },
		"package":                 func(f *Function) { f.Package = "abc" },
		"env.1X":                  func(f *Function) { f.Env = map[string]string{"1X": "y"} },
		"env.PORT":                func(f *Function) { f.Env = map[string]string{"PORT": "1"} },
		"env.NIMBUS_TOKEN":        func(f *Function) { f.Env = map[string]string{"NIMBUS_TOKEN": "1"} },
		"timeout":                 func(f *Function) { f.Timeout = Duration(time.Hour) },
		"scale.min":               func(f *Function) { f.Scale.Min = 5; f.Scale.Max = 2 },
		"scale.max":               func(f *Function) { f.Scale.Max = MaxInstances + 1 },
		"scale.maxConcurrency":    func(f *Function) { f.Scale.MaxConcurrency = -1 },
		"scale.idleTimeout":       func(f *Function) { f.Scale.IdleTimeout = Duration(time.Millisecond) },
		"healthPath":              func(f *Function) { f.HealthPath = "health" },
		"scale.type":              func(f *Function) { f.Scale.Type = "memory" },
		"scale.target":            func(f *Function) { zero := 0.0; f.Scale.Target = &zero },
		"scale.targetUtilization": func(f *Function) { f.Scale.TargetUtilization = 1.5 },
		"scale.stableWindow":      func(f *Function) { f.Scale.StableWindow = Duration(time.Second) },
		"scale.panicThreshold":    func(f *Function) { f.Scale.PanicThreshold = 1 },
		"scale.scaleDownDelay":    func(f *Function) { f.Scale.ScaleDownDelay = Duration(-time.Second) },
		"command[1]":              func(f *Function) { f.Command = []string{"./x", "a\x00b"} },
		"env.A":                   func(f *Function) { f.Env = map[string]string{"A": "x\ry"} },
		"labels.k":                func(f *Function) { f.Labels = map[string]string{"k": "v\nInjected: 1"} },
	}
	// A concurrency target one instance can never hold, as well as 0.
	f := valid()
	over := float64(f.Scale.MaxConcurrency + 1)
	f.Scale.Target = &over
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "scale.target") {
		t.Errorf("target above maxConcurrency: %v", err)
	}
	for field, mutate := range cases {
		f := valid()
		mutate(&f)
		err := f.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: want a FieldError, got %v", field, err)
			continue
		}
		if fe.Field != field || fe.Msg == "" {
			t.Errorf("%s: error names %q (%q)", field, fe.Field, fe.Msg)
		}
	}
}

// TestHostileSpecStrings: control characters in the strings of a spec and
// out-of-range numbers are refused with the field named and the fix; a
// timeout of 0 means the default, anything else below 10ms is refused.
func TestHostileSpecStrings(t *testing.T) {
	for _, tc := range []struct {
		field  string
		mutate func(*Function)
		want   string
	}{
		{"healthPath", func(f *Function) { f.HealthPath = "/health\r\nX-Evil: 1" }, "printable"},
		{"healthPath", func(f *Function) { f.HealthPath = "/a b" }, "printable"},
		{"healthPath", func(f *Function) { f.HealthPath = "/\x00" }, "printable"},
		{"command[0]", func(f *Function) { f.Command = []string{"./x\x00"} }, "control character"},
		{"command[1]", func(f *Function) { f.Command = []string{"sh", "-c", "echo\x1b[2J"}[:2] }, ""},
		{"command[2]", func(f *Function) { f.Command = []string{"sh", "-c", "echo\x1b[2J"} }, "control character"},
		{"command", func(f *Function) { f.Command = make([]string, 300); f.Command[0] = "./x" }, "at most 256"},
		{"annotations.a", func(f *Function) { f.Annotations = map[string]string{"a": "\x7f"} }, "control character"},
		{"env.B", func(f *Function) { f.Env = map[string]string{"B": "\x00"} }, "NUL"},
		{"timeout", func(f *Function) { f.Timeout = Duration(time.Millisecond) }, "10ms to 15m0s"},
		{"timeout", func(f *Function) { f.Timeout = Duration(-time.Second) }, "10ms to 15m0s"},
	} {
		f := valid()
		tc.mutate(&f)
		err := f.Validate()
		if tc.want == "" {
			if err != nil && strings.HasPrefix(err.Error(), tc.field) {
				t.Errorf("%s: refused: %v", tc.field, err)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.want) {
			t.Errorf("%s: want a FieldError containing %q, got %v", tc.field, tc.want, err)
		}
	}
	// A multi-line script for sh -c is fine; 0 is the default timeout.
	f := valid()
	f.Command = []string{"sh", "-c", "echo a\n\techo b"}
	if err := f.Validate(); err != nil {
		t.Errorf("a multi-line script refused: %v", err)
	}
	g := Function{Name: "x", Command: []string{"./x"}, Package: digest, Timeout: 0}.WithDefaults()
	if time.Duration(g.Timeout) != DefaultTimeout || g.Validate() != nil {
		t.Errorf("timeout 0 must mean the default: %v", g.Timeout)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`1e300`), &d); err == nil {
		t.Errorf("a duration of 1e300 seconds was accepted as %v", d)
	}
}

func TestDurationJSON(t *testing.T) {
	var s Scale
	if err := json.Unmarshal([]byte(`{"idleTimeout":"1m30s"}`), &s); err != nil || time.Duration(s.IdleTimeout) != 90*time.Second {
		t.Fatalf("string duration: %v %v", s.IdleTimeout, err)
	}
	if err := json.Unmarshal([]byte(`{"idleTimeout":2}`), &s); err != nil || time.Duration(s.IdleTimeout) != 2*time.Second {
		t.Fatalf("number duration: %v %v", s.IdleTimeout, err)
	}
	if err := json.Unmarshal([]byte(`{"idleTimeout":"soon"}`), &s); err == nil || !strings.Contains(err.Error(), "30s") {
		t.Fatalf("bad duration should explain the format, got %v", err)
	}
	b, _ := json.Marshal(Scale{IdleTimeout: Duration(time.Second)})
	if !strings.Contains(string(b), `"1s"`) {
		t.Fatalf("marshal: %s", b)
	}
}

func TestDockerSpecs(t *testing.T) {
	f := Function{Name: "c", Runtime: RuntimeDocker, Image: "ghcr.io/you/fn:1.0",
		Limits: Resources{Memory: "128Mi", CPU: "500m"}, Labels: map[string]string{"com.openfaas.scale.min": "1"}}.WithDefaults()
	if err := f.Validate(); err != nil {
		t.Fatalf("valid docker spec rejected: %v", err)
	}
	bad := map[string]func(*Function){
		"image":          func(f *Function) { f.Image = "" },
		"package":        func(f *Function) { f.Package = digest },
		"limits.memory":  func(f *Function) { f.Limits.Memory = "lots" },
		"limits.cpu":     func(f *Function) { f.Limits.CPU = "-1" },
		"labels.bad key": func(f *Function) { f.Labels = map[string]string{"bad key": "x"} },
	}
	for field, mutate := range bad {
		g := f
		mutate(&g)
		var fe *FieldError
		if err := g.Validate(); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
	p := valid()
	p.Image = "x"
	if err := p.Validate(); err == nil {
		t.Error("image on a process function accepted")
	}
	if b, _ := ParseMemory("128Mi"); b != 128<<20 {
		t.Errorf("128Mi = %d", b)
	}
	if n, _ := ParseCPU("250m"); n != 250_000_000 {
		t.Errorf("250m = %d", n)
	}
}

// TestLambdaProtocol: a lambda function takes one invocation at a time and
// runs as a process or a container; anything else is refused naming the
// field.
func TestLambdaProtocol(t *testing.T) {
	f := valid()
	f.Protocol, f.Scale.MaxConcurrency = ProtocolLambda, 0
	f = f.WithDefaults()
	if err := f.Validate(); err != nil || f.Scale.MaxConcurrency != 1 {
		t.Fatalf("a lambda function: %v, maxConcurrency %d", err, f.Scale.MaxConcurrency)
	}
	for field, mutate := range map[string]func(*Function){
		"scale.maxConcurrency": func(f *Function) { f.Scale.MaxConcurrency = 2 },
		"protocol":             func(f *Function) { f.Protocol = "grpc" },
	} {
		g := f
		mutate(&g)
		var fe *FieldError
		if err := g.Validate(); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

// TestVersionNames: a published version is named NAME--vN after its
// function; names ending so are kept for versions.
func TestVersionNames(t *testing.T) {
	v := valid()
	v.Name, v.VersionOf, v.Version = VersionName(v.Name, 3), v.Name, 3
	if err := v.WithDefaults().Validate(); err != nil {
		t.Fatalf("a version: %v", err)
	}
	for name, mutate := range map[string]func(*Function){
		"name":        func(f *Function) { f.Name = "api--v2" },
		"versionOf":   func(f *Function) { f.Name, f.VersionOf, f.Version = "api--v2", "api", 3 },
		"versionOf ":  func(f *Function) { f.Name, f.VersionOf, f.Version = "api--v0", "api", 0 },
		"versionOf  ": func(f *Function) { f.Name, f.VersionOf, f.Version = "other", "", 1 },
	} {
		g := valid()
		mutate(&g)
		var fe *FieldError
		if err := g.WithDefaults().Validate(); !errors.As(err, &fe) || fe.Field != strings.TrimSpace(name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if g := valid(); func() error { g.Name = "api-v2"; return g.WithDefaults().Validate() }() != nil {
		t.Error("api-v2 refused: only --vN is kept")
	}
}

func TestLambdaMemoryAndHandler(t *testing.T) {
	f := Function{Command: []string{"./bin/bootstrap"}}
	if f.LambdaMemoryMiB() != DefaultLambdaMemoryMiB || f.LambdaHandler() != "bootstrap" {
		t.Fatalf("defaults: %d %q", f.LambdaMemoryMiB(), f.LambdaHandler())
	}
	f.Limits.Memory, f.Env = "512Mi", map[string]string{"_HANDLER": "index.handler"}
	if f.LambdaMemoryMiB() != 512 || f.LambdaHandler() != "index.handler" {
		t.Fatalf("set: %d %q", f.LambdaMemoryMiB(), f.LambdaHandler())
	}
}

func TestKubeRefusesWhatItCannotRun(t *testing.T) {
	base := Function{Name: "k", Runtime: RuntimeKube, Image: "localhost/k:v1"}
	if err := base.WithDefaults().Validate(); err != nil {
		t.Fatalf("a plain kube function: %v", err)
	}
	for field, mod := range map[string]func(*Function){
		"protocol": func(f *Function) { f.Protocol = ProtocolLambda; f.Scale.MaxConcurrency = 1 },
		"labels":   func(f *Function) { f.Labels = map[string]string{"team": strings.Repeat("a", 64)} },
		"annotations": func(f *Function) {
			f.Annotations = map[string]string{"container.apparmor.security.beta.kubernetes.io/function": "unconfined"}
		},
	} {
		f := base
		mod(&f)
		err := f.WithDefaults().Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v, want an error naming %s", field, err, field)
		}
	}
	ok := base
	ok.Secrets = []string{"s"} // mounted from a Secret, as OpenFaaS does
	ok.Labels = map[string]string{"com.openfaas.scale.zero": "true", "app": "a.b_c-d"}
	ok.Annotations = map[string]string{"prometheus.io.scrape": "true"}
	if err := ok.WithDefaults().Validate(); err != nil {
		t.Fatalf("ordinary labels and annotations: %v", err)
	}
}
