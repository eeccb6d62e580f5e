// Package function holds nimbus's domain types: what a function is, how it is
// named and how a spec is checked. It imports only the standard library, so every
// other package can depend on it.
//
// A Function is immutable once stored: a deploy writes a new revision. Defaults
// are applied by WithDefaults and checked by Validate; every entry point (API,
// CLI, nimbus.yaml) runs both before anything is stored or started.
package function

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultNamespace is the namespace of a function deployed without one.
const DefaultNamespace = "default"

// OpenFaaSNamespace is what OpenFaaS clients call the default namespace
// (faas-cli invoke f calls /function/f.openfaas-fn): it names
// DefaultNamespace wherever a namespace is read, and no namespace of its
// own may have it.
const OpenFaaSNamespace = "openfaas-fn"

// CanonicalNamespace maps OpenFaaS's name of the default namespace (and "")
// to DefaultNamespace; other names are their own.
func CanonicalNamespace(ns string) string {
	if ns == "" || ns == OpenFaaSNamespace {
		return DefaultNamespace
	}
	return ns
}

// Protocols a function instance speaks.
const (
	// ProtocolHTTP: the program serves HTTP on $PORT.
	ProtocolHTTP = "http"
	// ProtocolStdio: one process per request, body on stdin, response on stdout.
	ProtocolStdio = "stdio"
	// ProtocolLambda: the program is an AWS Lambda handler (a bootstrap)
	// that asks the Lambda Runtime API for invocations, one at a time.
	ProtocolLambda = "lambda"
)

// Runtimes (drivers) that run instances.
const (
	RuntimeProcess = "process"
	RuntimeDocker  = "docker"
	// RuntimeKube runs a function as a Kubernetes Deployment.
	RuntimeKube = "kube"
)

// Limits on spec values; they bound what one function may ask of the machine.
const (
	MinTimeout        = 10 * time.Millisecond
	MaxTimeout        = 15 * time.Minute
	MaxIdleTimeout    = 24 * time.Hour
	MaxInstances      = 1000
	MaxConcurrencyCap = 10000
	maxEnvVars        = 256
	maxEnvBytes       = 64 << 10
	maxArgs           = 256
	maxArgBytes       = 64 << 10
)

// Defaults applied by WithDefaults.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultMaxInstances   = 4
	DefaultMaxConcurrency = 100
	DefaultMaxRetries     = 2
	DefaultMaxEventAge    = 6 * time.Hour
	DefaultBackoff        = time.Second
)

var (
	nameRE   = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// Function is the desired state of one function: what to run and how to scale it.
type Function struct {
	Name      string            `json:"name" yaml:"name"`
	Namespace string            `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Runtime   string            `json:"runtime,omitempty" yaml:"runtime,omitempty"`
	Protocol  string            `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	Command   []string          `json:"command" yaml:"command"`
	Package   string            `json:"package,omitempty" yaml:"package,omitempty"`
	Env       map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	Timeout   Duration          `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Scale     Scale             `json:"scale" yaml:"scale"`
	// HealthPath is probed until it answers; any HTTP response means ready.
	HealthPath string `json:"healthPath,omitempty" yaml:"healthPath,omitempty"`

	// Image is the container image (runtime docker).
	Image string `json:"image,omitempty" yaml:"image,omitempty"`
	// Limits cap a container's resources; Requests are kept for the
	// OpenFaaS API and schedulers that use them.
	Limits   Resources `json:"limits,omitzero" yaml:"limits,omitempty"`
	Requests Resources `json:"requests,omitzero" yaml:"requests,omitempty"`
	// ReadOnlyRootFilesystem mounts a container's root read-only (with a
	// writable /tmp).
	ReadOnlyRootFilesystem bool              `json:"readOnlyRootFilesystem,omitempty" yaml:"readOnlyRootFilesystem,omitempty"`
	Labels                 map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations            map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
	// Secrets name secrets of the function's namespace, given to each
	// instance as files (never as environment variables).
	Secrets []string `json:"secrets,omitempty" yaml:"secrets,omitempty"`
	// Async governs invocations through /async-function.
	Async Async `json:"async,omitzero" yaml:"async,omitempty"`

	// VersionOf and Version mark a published version (Lambda's
	// PublishVersion): a frozen copy of the function VersionOf, named
	// VersionName(VersionOf, Version), run beside it. Set by publishing
	// only; a version is never updated.
	VersionOf string `json:"versionOf,omitempty" yaml:"-"`
	Version   int    `json:"version,omitempty" yaml:"-"`
}

// versionSuffixRE is the end of a published version's name.
var versionSuffixRE = regexp.MustCompile(`--v[0-9]+$`)

// VersionName is the name of version n of the function name: name--vN.
// Names ending so are kept for versions.
func VersionName(name string, n int) string { return name + "--v" + strconv.Itoa(n) }

// IsVersionName reports whether name is kept for published versions.
func IsVersionName(name string) bool { return versionSuffixRE.MatchString(name) }

// MaxVersionedName is the longest name of a function that can publish
// versions: its versions' names must be names too.
const MaxVersionedName = 63 - len("--v999999")

// Async is the retry policy of asynchronous invocations, as AWS Lambda's:
// a failed attempt (5xx, timeout, crash) is retried up to MaxRetries times
// with exponential backoff and jitter from Backoff; an invocation older than
// MaxEventAge, or out of attempts, becomes a dead letter.
type Async struct {
	MaxRetries  *int     `json:"maxRetries,omitempty" yaml:"maxRetries,omitempty"`
	MaxEventAge Duration `json:"maxEventAge,omitempty" yaml:"maxEventAge,omitempty"`
	Backoff     Duration `json:"backoff,omitempty" yaml:"backoff,omitempty"`
}

// Retries is MaxRetries or its default.
func (a Async) Retries() int {
	if a.MaxRetries == nil {
		return DefaultMaxRetries
	}
	return *a.MaxRetries
}

// Resources are Kubernetes-style quantities: memory "128Mi", cpu "500m".
type Resources struct {
	Memory string `json:"memory,omitempty" yaml:"memory,omitempty"`
	CPU    string `json:"cpu,omitempty" yaml:"cpu,omitempty"`
}

// Scale bounds how many instances run and how much each one takes, and
// what the autoscaler aims for: Target of the metric Type per instance,
// times TargetUtilization (internal/autoscaler).
type Scale struct {
	Min int `json:"min" yaml:"min"`
	Max int `json:"max,omitempty" yaml:"max,omitempty"`
	// MaxConcurrency is the most requests one instance serves at once.
	MaxConcurrency int `json:"maxConcurrency,omitempty" yaml:"maxConcurrency,omitempty"`
	// IdleTimeout is the scale-to-zero grace: with Min 0, the last instance
	// stops once nothing was asked of the function for this long.
	IdleTimeout Duration `json:"idleTimeout,omitempty" yaml:"idleTimeout,omitempty"`
	// Type is the metric scaled on: "concurrency" (requests in flight or
	// waiting), "rps" (requests per second) or "cpu" (millicores).
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
	// Target is the metric's value one instance should carry: by default
	// MaxConcurrency for concurrency, 200 for rps, 1000 (one CPU) for cpu.
	// A pointer so that an explicit 0 is refused rather than defaulted.
	Target *float64 `json:"target,omitempty" yaml:"target,omitempty"`
	// TargetUtilization is the share of Target aimed for (headroom for
	// bursts): 0.7 by default, as Knative.
	TargetUtilization float64 `json:"targetUtilization,omitempty" yaml:"targetUtilization,omitempty"`
	// StableWindow is the window load is averaged over (60s by default); the
	// panic window is a tenth of it.
	StableWindow Duration `json:"stableWindow,omitempty" yaml:"stableWindow,omitempty"`
	// PanicThreshold: when the panic window asks for this many times the
	// ready instances (2 by default), scale on the panic window and do not
	// scale down until the stable window has passed without that.
	PanicThreshold float64 `json:"panicThreshold,omitempty" yaml:"panicThreshold,omitempty"`
	// ScaleDownDelay holds a scale-down until the lower count has been asked
	// for this long (0 by default).
	ScaleDownDelay Duration `json:"scaleDownDelay,omitempty" yaml:"scaleDownDelay,omitempty"`
}

// Scale metric types.
const (
	ScaleConcurrency = "concurrency"
	ScaleRPS         = "rps"
	ScaleCPU         = "cpu"
)

// Autoscaler defaults (Knative's).
const (
	DefaultTargetUtilization = 0.7
	DefaultStableWindow      = 60 * time.Second
	DefaultPanicThreshold    = 2.0
	DefaultTargetRPS         = 200
	DefaultTargetCPU         = 1000
)

// TargetValue is the metric's value one instance is aimed at: Target (or
// its default) times TargetUtilization.
func (s Scale) TargetValue() float64 {
	t := float64(s.MaxConcurrency)
	switch {
	case s.Target != nil:
		t = *s.Target
	case s.Type == ScaleRPS:
		t = DefaultTargetRPS
	case s.Type == ScaleCPU:
		t = DefaultTargetCPU
	}
	return t * s.TargetUtilization
}

// Key is the function's identity: "namespace/name".
func (f Function) Key() string { return Key(f.Namespace, f.Name) }

// IsPackageDigest says whether s names a package: "sha256:" and 64
// lowercase hex digits.
func IsPackageDigest(s string) bool { return digestRE.MatchString(s) }

// Key joins a namespace and a name into a function key.
func Key(namespace, name string) string { return namespace + "/" + name }

// WithDefaults returns f with every unset optional field at its default.
func (f Function) WithDefaults() Function {
	if f.Namespace == "" {
		f.Namespace = DefaultNamespace
	}
	if f.Runtime == "" {
		f.Runtime = RuntimeProcess
		if f.Image != "" {
			f.Runtime = RuntimeDocker // the server may choose kube instead (--provider)
		}
	}
	if f.Protocol == "" {
		f.Protocol = ProtocolHTTP
	}
	if f.Timeout == 0 {
		f.Timeout = Duration(DefaultTimeout)
	}
	if f.Scale.Max == 0 {
		f.Scale.Max = max(DefaultMaxInstances, f.Scale.Min)
	}
	if f.Scale.MaxConcurrency == 0 {
		f.Scale.MaxConcurrency = DefaultMaxConcurrency
		switch f.Protocol {
		case ProtocolStdio:
			f.Scale.MaxConcurrency = 16
		case ProtocolLambda:
			f.Scale.MaxConcurrency = 1 // one invocation at a time, as Lambda
		}
	}
	if f.Scale.IdleTimeout == 0 {
		f.Scale.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if f.Scale.Type == "" {
		f.Scale.Type = ScaleConcurrency
	}
	if f.Scale.TargetUtilization == 0 {
		f.Scale.TargetUtilization = DefaultTargetUtilization
	}
	if f.Scale.StableWindow == 0 {
		f.Scale.StableWindow = Duration(DefaultStableWindow)
	}
	if f.Scale.PanicThreshold == 0 {
		f.Scale.PanicThreshold = DefaultPanicThreshold
	}
	if f.HealthPath == "" {
		f.HealthPath = "/"
	}
	if f.Async.MaxEventAge == 0 {
		f.Async.MaxEventAge = Duration(DefaultMaxEventAge)
	}
	if f.Async.Backoff == 0 {
		f.Async.Backoff = Duration(DefaultBackoff)
	}
	return f
}

// FieldError says which field of a spec is wrong and how to fix it.
type FieldError struct {
	Field string // JSON path of the field, e.g. "scale.max"
	Msg   string // what is wrong and what to do
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ValidateName checks a function name against the DNS-1035 label rule.
func ValidateName(field, name string) error {
	if name == "" {
		return fieldErr(field, "is required: a DNS-1035 label such as \"hello-world\"")
	}
	if !nameRE.MatchString(name) {
		return fieldErr(field, "%q is not a DNS-1035 label: use 1-63 lowercase letters, digits or '-', starting with a letter and not ending with '-'", name)
	}
	return nil
}

// Validate checks a spec that WithDefaults has filled in. The first error found
// is returned, as a *FieldError.
func (f Function) Validate() error {
	if err := ValidateName("name", f.Name); err != nil {
		return err
	}
	if err := ValidateName("namespace", f.Namespace); err != nil {
		return err
	}
	switch {
	case f.VersionOf == "" && f.Version == 0 && versionSuffixRE.MatchString(f.Name):
		return fieldErr("name", "%q ends as the name of a published version (--vN): choose another name", f.Name)
	case (f.VersionOf != "" || f.Version != 0) && (f.Version < 1 || ValidateName("versionOf", f.VersionOf) != nil || f.Name != VersionName(f.VersionOf, f.Version)):
		return fieldErr("versionOf", "a published version is named NAME--vN after its function NAME and number N (got %q, version %d of %q)", f.Name, f.Version, f.VersionOf)
	}
	if f.Namespace == OpenFaaSNamespace {
		return fieldErr("namespace", "%q is OpenFaaS's name of the namespace %q: use %q", OpenFaaSNamespace, DefaultNamespace, DefaultNamespace)
	}
	if f.Runtime != RuntimeProcess && f.Runtime != RuntimeDocker && f.Runtime != RuntimeKube {
		return fieldErr("runtime", "%q is not supported: use %q, %q or %q", f.Runtime, RuntimeProcess, RuntimeDocker, RuntimeKube)
	}
	switch f.Protocol {
	case ProtocolHTTP, ProtocolStdio:
	case ProtocolLambda:
		if f.Scale.MaxConcurrency > 1 {
			return fieldErr("scale.maxConcurrency", "%d: a %q instance takes one invocation at a time, as Lambda: use 1", f.Scale.MaxConcurrency, ProtocolLambda)
		}
	default:
		return fieldErr("protocol", "%q is not supported: use %q, %q or %q", f.Protocol, ProtocolHTTP, ProtocolStdio, ProtocolLambda)
	}
	switch {
	case f.Runtime == RuntimeKube && f.Image != "" && f.Package != "":
		return fieldErr("package", "a %q function runs an image or a package, not both: remove image or package", RuntimeKube)
	case f.Runtime == RuntimeDocker || f.Runtime == RuntimeKube && f.Package == "":
		if err := validateImage(f.Image); err != nil {
			return err
		}
		if f.Package != "" {
			return fieldErr("package", "is for runtimes %q and %q; a %q function runs its image: remove package", RuntimeProcess, RuntimeKube, f.Runtime)
		}
	case f.Image != "":
		return fieldErr("image", "is for runtimes %q and %q: set runtime: docker or kube, or remove image", RuntimeDocker, RuntimeKube)
	}
	if f.Package != "" && (len(f.Command) == 0 || strings.TrimSpace(f.Command[0]) == "") {
		return fieldErr("command", "is required: the program to run, e.g. [\"./hello\"] or [\"python3\", \"main.py\"]")
	}
	if err := validateCommand(f.Command); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, sec := range f.Secrets {
		if err := ValidateName(fmt.Sprintf("secrets[%d]", i), sec); err != nil {
			return err
		}
		if seen[sec] {
			return fieldErr(fmt.Sprintf("secrets[%d]", i), "%q is listed twice: remove one", sec)
		}
		seen[sec] = true
	}
	if err := f.Limits.validate("limits"); err != nil {
		return err
	}
	if err := f.Requests.validate("requests"); err != nil {
		return err
	}
	for _, m := range []struct {
		field string
		v     map[string]string
	}{{"labels", f.Labels}, {"annotations", f.Annotations}} {
		if err := validateMeta(m.field, m.v); err != nil {
			return err
		}
	}
	if f.Runtime == RuntimeKube {
		if err := f.validateKube(); err != nil {
			return err
		}
	}
	if f.Runtime == RuntimeProcess && f.Package == "" {
		return fieldErr("package", "is required for runtime %q: upload the code with POST /v1/packages and give its digest", RuntimeProcess)
	}
	if f.Package != "" && !digestRE.MatchString(f.Package) {
		return fieldErr("package", "%q is not a package digest: expected \"sha256:\" and 64 lowercase hex digits", f.Package)
	}
	if err := validateEnv(f.Env); err != nil {
		return err
	}
	if t := time.Duration(f.Timeout); t < MinTimeout || t > MaxTimeout {
		return fieldErr("timeout", "%s is out of range: use %s to %s (leave it out, or 0, for the default %s)", t, MinTimeout, MaxTimeout, DefaultTimeout)
	}
	s := f.Scale
	switch {
	case s.Min < 0 || s.Min > MaxInstances:
		return fieldErr("scale.min", "%d is out of range: use 0 to %d", s.Min, MaxInstances)
	case s.Max < 1 || s.Max > MaxInstances:
		return fieldErr("scale.max", "%d is out of range: use 1 to %d", s.Max, MaxInstances)
	case s.Min > s.Max:
		return fieldErr("scale.min", "%d is above scale.max %d: lower min or raise max", s.Min, s.Max)
	case s.MaxConcurrency < 1 || s.MaxConcurrency > MaxConcurrencyCap:
		return fieldErr("scale.maxConcurrency", "%d is out of range: use 1 to %d", s.MaxConcurrency, MaxConcurrencyCap)
	}
	if it := time.Duration(s.IdleTimeout); it < 100*time.Millisecond || it > MaxIdleTimeout {
		return fieldErr("scale.idleTimeout", "%s is out of range: use 100ms to %s", it, MaxIdleTimeout)
	}
	if err := s.validateTarget(); err != nil {
		return err
	}
	if r := f.Async.Retries(); r < 0 || r > 10 {
		return fieldErr("async.maxRetries", "%d is out of range: use 0 to 10", r)
	}
	if a := time.Duration(f.Async.MaxEventAge); a < time.Second || a > 6*time.Hour {
		return fieldErr("async.maxEventAge", "%s is out of range: use 1s to 6h", a)
	}
	if b := time.Duration(f.Async.Backoff); b < 10*time.Millisecond || b > 10*time.Minute {
		return fieldErr("async.backoff", "%s is out of range: use 10ms to 10m", b)
	}
	if !strings.HasPrefix(f.HealthPath, "/") || len(f.HealthPath) > 1024 {
		return fieldErr("healthPath", "%q must start with '/' and be at most 1024 bytes", f.HealthPath)
	}
	for i := 0; i < len(f.HealthPath); i++ {
		if c := f.HealthPath[i]; c <= ' ' || c >= 0x7f {
			return fieldErr("healthPath", "has %q at byte %d: use a URL path of printable characters, percent-encoding others", c, i)
		}
	}
	return nil
}

// validateTarget checks what the autoscaler is given.
func (s Scale) validateTarget() error {
	switch s.Type {
	case ScaleConcurrency, ScaleRPS, ScaleCPU:
	default:
		return fieldErr("scale.type", "%q is not a scale metric: use %q, %q or %q", s.Type, ScaleConcurrency, ScaleRPS, ScaleCPU)
	}
	if t := s.Target; t != nil && !(*t > 0 && *t <= 1e6) {
		return fieldErr("scale.target", "%g cannot be met: use a value per instance above 0 (at most 1e6)", *t)
	}
	if s.Type == ScaleConcurrency && s.Target != nil && *s.Target > float64(s.MaxConcurrency) {
		return fieldErr("scale.target", "%g is above scale.maxConcurrency %d, which one instance can never hold: lower the target or raise maxConcurrency", *s.Target, s.MaxConcurrency)
	}
	if u := s.TargetUtilization; !(u >= 0.01 && u <= 1) {
		return fieldErr("scale.targetUtilization", "%g is out of range: use 0.01 to 1", u)
	}
	if w := time.Duration(s.StableWindow); w < 6*time.Second || w > time.Hour {
		return fieldErr("scale.stableWindow", "%s is out of range: use 6s to 1h", w)
	}
	if p := s.PanicThreshold; !(p >= 1.1 && p <= 10) {
		return fieldErr("scale.panicThreshold", "%g is out of range: use 1.1 to 10 (times the ready instances)", p)
	}
	if d := time.Duration(s.ScaleDownDelay); d < 0 || d > time.Hour {
		return fieldErr("scale.scaleDownDelay", "%s is out of range: use 0 to 1h", d)
	}
	return nil
}

// controlAt returns the index of the first control character in s (C0, DEL;
// tab and newline are allowed if text), or -1.
func controlAt(s string, text bool) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != 0x7f {
			continue
		}
		if text && (c == '\t' || c == '\n') {
			continue
		}
		return i
	}
	return -1
}

// validateCommand bounds the arguments: no NUL (exec cannot pass one) and no
// other control character but tab and newline (a script given to "sh -c"
// may span lines).
func validateCommand(argv []string) error {
	if len(argv) > maxArgs {
		return fieldErr("command", "has %d arguments: at most %d are allowed", len(argv), maxArgs)
	}
	size := 0
	for i, a := range argv {
		size += len(a)
		if j := controlAt(a, true); j >= 0 {
			return fieldErr(fmt.Sprintf("command[%d]", i), "has a control character (%q at byte %d): remove it", a[j], j)
		}
	}
	if size > maxArgBytes {
		return fieldErr("command", "is %d bytes: at most %d are allowed", size, maxArgBytes)
	}
	return nil
}

// Ranges are the bounds of a spec's numeric fields, for messages that name
// a field given a number it cannot hold.
var Ranges = map[string]string{
	"scale.min":               fmt.Sprintf("a whole number from 0 to %d", MaxInstances),
	"scale.max":               fmt.Sprintf("a whole number from 1 to %d", MaxInstances),
	"scale.maxConcurrency":    fmt.Sprintf("a whole number from 1 to %d", MaxConcurrencyCap),
	"async.maxRetries":        "a whole number from 0 to 10",
	"scale.target":            "a number above 0, at most 1e6",
	"scale.targetUtilization": "a number from 0.01 to 1",
	"scale.panicThreshold":    "a number from 1.1 to 10",
}

// reservedEnv are variables nimbus sets itself; a spec may not override them.
var reservedEnv = map[string]bool{"PORT": true}

func validateEnv(env map[string]string) error {
	if len(env) > maxEnvVars {
		return fieldErr("env", "has %d variables: at most %d are allowed", len(env), maxEnvVars)
	}
	size := 0
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := env[k]
		size += len(k) + len(v)
		switch {
		case !envKeyRE.MatchString(k):
			return fieldErr("env."+k, "is not a valid variable name: use letters, digits and '_', not starting with a digit")
		case reservedEnv[k] || strings.HasPrefix(k, "NIMBUS_"):
			return fieldErr("env."+k, "is set by nimbus and cannot be overridden: remove it")
		case strings.ContainsRune(v, 0):
			return fieldErr("env."+k, "contains a NUL byte: remove it")
		case controlAt(v, true) >= 0:
			i := controlAt(v, true)
			return fieldErr("env."+k, "has a control character (%q at byte %d): remove it", v[i], i)
		}
	}
	if size > maxEnvBytes {
		return fieldErr("env", "is %d bytes: at most %d are allowed", size, maxEnvBytes)
	}
	return nil
}

// DefaultLambdaMemoryMiB is the memory a lambda function reports when its
// limits give none, as Lambda's default.
const DefaultLambdaMemoryMiB = 128

// LambdaMemoryMiB is the memory size a lambda function reports
// (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, MemorySize): limits.memory in MiB, or
// DefaultLambdaMemoryMiB.
func (f Function) LambdaMemoryMiB() int64 {
	if b, err := ParseMemory(f.Limits.Memory); f.Limits.Memory != "" && err == nil {
		return max(b>>20, 1)
	}
	return DefaultLambdaMemoryMiB
}

// LambdaHandler is a lambda function's handler (_HANDLER, Handler): its
// _HANDLER env if set, else its command's file name.
func (f Function) LambdaHandler() string {
	if h := f.Env["_HANDLER"]; h != "" {
		return h
	}
	if len(f.Command) == 0 {
		return ""
	}
	return path.Base(f.Command[0])
}

// The region and account a lambda function answers to in ARNs, on the
// Runtime API and the Lambda API alike.
const (
	LambdaRegion  = "us-east-1"
	LambdaAccount = "000000000000"
)

// LambdaName is the Lambda function a function is: its own name, or for a
// published version the function it is a version of.
func (f Function) LambdaName() string {
	if f.VersionOf != "" {
		return f.VersionOf
	}
	return f.Name
}

// LambdaVersion is the version a function is: $LATEST, or a published
// version's number.
func (f Function) LambdaVersion() string {
	if f.VersionOf != "" {
		return strconv.Itoa(f.Version)
	}
	return "$LATEST"
}

// LambdaInvokedARN is the ARN a handler of f is told it was invoked as:
// the function's, qualified by the version's number for a version.
func (f Function) LambdaInvokedARN() string {
	if f.VersionOf != "" {
		return LambdaARN(f.VersionOf) + ":" + strconv.Itoa(f.Version)
	}
	return LambdaARN(f.Name)
}

// LambdaARN is the ARN of the Lambda function named name.
func LambdaARN(name string) string {
	return "arn:aws:lambda:" + LambdaRegion + ":" + LambdaAccount + ":function:" + name
}

// kubeLabelValueRE is a Kubernetes label value.
var kubeLabelValueRE = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$`)

// validateKube checks what runtime kube cannot take: labels and
// annotations go onto the pods, where Kubernetes's own domains would let
// a function change how it is run (kubernetes.io, k8s.io: AppArmor,
// service selection); lambda handlers are not run there yet.
func (f Function) validateKube() error {
	if f.Protocol == ProtocolLambda {
		return fieldErr("protocol", "runtime %q does not run %q handlers yet: use runtime %q or %q", RuntimeKube, ProtocolLambda, RuntimeProcess, RuntimeDocker)
	}
	for _, m := range []struct {
		field string
		v     map[string]string
	}{{"labels", f.Labels}, {"annotations", f.Annotations}} {
		for k, v := range m.v {
			domain, _, ok := strings.Cut(k, "/")
			if ok && (domain == "kubernetes.io" || domain == "k8s.io" || strings.HasSuffix(domain, ".kubernetes.io") || strings.HasSuffix(domain, ".k8s.io")) {
				return fieldErr(m.field, "%q is in a Kubernetes domain (kubernetes.io, k8s.io), which a function may not set on its pods", k)
			}
			if m.field == "labels" && !kubeLabelValueRE.MatchString(v) {
				return fieldErr("labels", "%s: %q is not a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", k, v)
			}
		}
	}
	return nil
}
