package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"

	"nimbus/internal/function"
	"nimbus/internal/watchdog"
)

// Where a Lambda container image keeps its code and its runtime, as
// Lambda's base images do: the task root holds the handler, the runtime
// directory the bootstrap.
const (
	LambdaTaskRoot   = "/var/task"
	LambdaRuntimeDir = "/var/runtime"
)

// lambdaAPI serves the Runtime API to one container of fn: on the
// gateway address of nimbus's network, which the container reaches and
// nothing outside the machine does, under a random path prefix, so that
// another container on the network cannot take its invocations. The
// image's own entrypoint runs, as Lambda runs a container image's: it must
// be a runtime client (aws-lambda-go's lambda.Start, or a runtime
// interface client) that reads AWS_LAMBDA_RUNTIME_API.
func (d *Driver) lambdaAPI(ctx context.Context, fn function.Function) (*watchdog.Lambda, error) {
	res, err := d.cli.NetworkInspect(ctx, d.opts.Network, client.NetworkInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect network %s: %w", d.opts.Network, err)
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.Is4() {
			api, err := watchdog.NewLambdaOn(c.Gateway.String(), fn.LambdaInvokedARN(), time.Duration(fn.Timeout))
			if err != nil {
				return nil, fmt.Errorf("the Runtime API on network %s's gateway %s (a lambda function needs the Docker engine on this machine): %w",
					d.opts.Network, c.Gateway, err)
			}
			return api, nil
		}
	}
	return nil, fmt.Errorf("network %s has no IPv4 gateway to serve the Runtime API on", d.opts.Network)
}
