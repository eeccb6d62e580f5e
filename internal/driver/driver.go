// Package driver declares how nimbus runs function instances on a substrate.
// The process driver (driver/process) runs local processes; drivertest is the
// conformance suite every driver passes.
//
// A driver starts one instance at a time and reports when it exits; deciding
// how many instances a function has is the gateway's job, not the driver's.
// Drivers are safe for concurrent use.
package driver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"nimbus/internal/function"
)

// ErrStartFailed wraps every reason an instance could not be made ready.
var ErrStartFailed = errors.New("instance failed to start")

// Spec is what a driver needs to start one instance.
type Spec struct {
	Function function.Function
	Revision uint64
	// OpenPackage returns the bytes of the function's package (a gzipped tar).
	OpenPackage func(ctx context.Context, digest string) (io.ReadCloser, error)
	// Log receives each line the instance writes; stream is "stdout",
	// "stderr" or "system". It must not block.
	Log func(instance, stream, text string)
	// Secrets are the values of the function's secrets, by name. A driver
	// gives them to the instance as files only: never in its environment,
	// arguments or logs.
	Secrets map[string][]byte
}

// Instance is one running copy of a function.
type Instance interface {
	// ID is unique among this driver's instances.
	ID() string
	// Addr is the host:port the instance serves HTTP on; empty when
	// Transport carries its requests instead.
	Addr() string
	// Transport, when not nil, carries requests to the instance (a stdio
	// instance forks one process per request).
	Transport() http.RoundTripper
	// Started is when the instance became ready.
	Started() time.Time
	// Done is closed when the instance has exited; Err then says why (nil
	// after Stop).
	Done() <-chan struct{}
	Err() error
	// Stop asks the instance to finish (SIGTERM), waits until ctx ends, then
	// kills it. It returns once the instance is gone. It is idempotent.
	Stop(ctx context.Context) error
}

// CPUMeter is an Instance that can tell the CPU it has used, for scaling
// on CPU.
type CPUMeter interface {
	// CPUTime is the CPU time (user and system) every process of the
	// instance has used since it started.
	CPUTime(ctx context.Context) (time.Duration, error)
}

// Forgetter is a driver that keeps files per function (unpacked packages,
// secrets): Forget removes them once a deleted function's instances have
// stopped.
type Forgetter interface {
	Forget(namespace, name string) error
}

// Driver starts instances on one substrate.
type Driver interface {
	// Name is the runtime name functions select the driver with.
	Name() string
	// Start starts one instance of spec and returns once it is ready to serve,
	// or an error wrapping ErrStartFailed (with the program's last output when
	// it exited early). Ending ctx abandons the start and stops the instance.
	Start(ctx context.Context, spec Spec) (Instance, error)
	// Reap removes instances an earlier run of nimbus left behind.
	Reap(ctx context.Context) error
	// Close stops every instance this driver started.
	Close(ctx context.Context) error
}

// LambdaEnv is the environment Lambda documents for a handler of fn: the
// Runtime API's address, the function's name, version and memory, its log
// stream (the instance), the task root its code is in and the region. A
// driver sets these after the function's own env, which cannot change them.
func LambdaEnv(fn function.Function, revision uint64, instance, taskRoot, runtimeDir, runtimeAPI string) []string {
	return []string{
		"AWS_LAMBDA_RUNTIME_API=" + runtimeAPI,
		"AWS_LAMBDA_FUNCTION_NAME=" + fn.LambdaName(),
		"AWS_LAMBDA_FUNCTION_VERSION=" + fn.LambdaVersion(),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.FormatInt(fn.LambdaMemoryMiB(), 10),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + fn.LambdaName(),
		"AWS_LAMBDA_LOG_STREAM_NAME=" + instance,
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_REGION=" + function.LambdaRegion,
		"AWS_DEFAULT_REGION=" + function.LambdaRegion,
		"AWS_EXECUTION_ENV=AWS_Lambda_nimbus",
		"LAMBDA_TASK_ROOT=" + taskRoot,
		"LAMBDA_RUNTIME_DIR=" + runtimeDir,
		"_HANDLER=" + fn.LambdaHandler(),
		"NIMBUS_FUNCTION_REVISION=" + strconv.FormatUint(revision, 10),
	}
}

// TeeLambdaOutput is log that also gives what a handler writes to api, for
// the log tail of the invocation it is at.
func TeeLambdaOutput(log func(instance, stream, text string), api interface{ Output(string) }) func(instance, stream, text string) {
	return func(instance, stream, text string) {
		if stream != "system" {
			api.Output(text)
		}
		if log != nil {
			log(instance, stream, text)
		}
	}
}
