package process

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/watchdog"
)

// stuckGrace is how long a handler that overran its deadline has to exit
// after SIGTERM before it is killed.
const stuckGrace = 2 * time.Second

// lambdaInstance is a handler process that speaks the Lambda Runtime API
// to a watchdog.Lambda, which is its transport.
type lambdaInstance struct {
	*httpInstance
	api *watchdog.Lambda
}

func (i *lambdaInstance) Addr() string                 { return "" }
func (i *lambdaInstance) Transport() http.RoundTripper { return i.api }

// Stop ends the process, then the Runtime API it was served.
func (i *lambdaInstance) Stop(ctx context.Context) error {
	err := i.httpInstance.Stop(ctx)
	i.api.Close()
	return err
}

// startLambda starts a Lambda handler (a bootstrap program, as the
// provided.al2023 runtime runs) with the environment Lambda documents, and
// waits until it asks for its first invocation.
func startLambda(ctx context.Context, d *Driver, l *launch, spec driver.Spec) (*lambdaInstance, error) {
	fn := spec.Function
	api, err := watchdog.NewLambda(fn.LambdaInvokedARN(), time.Duration(fn.Timeout))
	if err != nil {
		return nil, fmt.Errorf("%w: the Runtime API: %w", driver.ErrStartFailed, err)
	}
	api.MemoryMiB, api.Version = fn.LambdaMemoryMiB(), fn.LambdaVersion()
	spec.Log = driver.TeeLambdaOutput(spec.Log, api)
	inst := &lambdaInstance{api: api}
	proc, err := startProcess(d, l, spec, "", driver.LambdaEnv(fn, spec.Revision, l.id, l.dir, l.dir, api.RuntimeAPI()), api.Close)
	if err != nil {
		api.Close()
		return nil, err
	}
	inst.httpInstance = proc
	api.Drain = proc.drain
	// A handler still at an invocation past its deadline is replaced, as
	// Lambda resets the sandbox after a timeout: SIGTERM, then SIGKILL.
	api.Stuck = func() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), stuckGrace)
			defer cancel()
			proc.Stop(ctx)
		}()
	}
	switch err := watchdog.WaitLambdaReady(ctx, api, proc.done); {
	case err == nil:
	case errors.Is(err, watchdog.ErrExited):
		inst.Stop(context.Background())
		return nil, fmt.Errorf("%w: the handler exited before asking for an invocation%s: %w", driver.ErrStartFailed, watchdog.ExitReason(err), proc.Err())
	default:
		inst.Stop(context.Background())
		return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
	}
	proc.started = time.Now()
	return inst, nil
}
