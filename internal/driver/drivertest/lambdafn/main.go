// Command lambdafn is an unmodified AWS Lambda handler for the tests: it
// runs under aws-lambda-go's lambda.Start, built as "bootstrap" (the
// provided.al2023 convention), and does what its event asks.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Event says what to do; Name is echoed.
type Event struct {
	Op   string `json:"op"`
	Name string `json:"name"`
	Ms   int    `json:"ms"`
}

// Reply is what an invocation sees of Lambda.
type Reply struct {
	Hello       string            `json:"hello"`
	RequestID   string            `json:"requestId"`
	ARN         string            `json:"arn"`
	RemainingMs int64             `json:"remainingMs"`
	PID         int               `json:"pid"`
	Env         map[string]string `json:"env"`
}

var env = []string{"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
	"LAMBDA_TASK_ROOT", "_HANDLER", "AWS_REGION", "AWS_LAMBDA_RUNTIME_API", "GREETING", "NIMBUS_DRIVERTEST_CANARY"}

func handle(ctx context.Context, e Event) (Reply, error) {
	switch e.Op {
	case "fail":
		return Reply{}, errors.New("asked to fail: " + e.Name)
	case "panic":
		panic("asked to panic")
	case "exit":
		os.Exit(3)
	case "hang": // past its deadline, ignoring it
		time.Sleep(time.Duration(e.Ms) * time.Millisecond)
	case "sleep":
		select {
		case <-time.After(time.Duration(e.Ms) * time.Millisecond):
		case <-ctx.Done():
			return Reply{}, ctx.Err()
		}
	}
	lc, _ := lambdacontext.FromContext(ctx)
	r := Reply{Hello: e.Name, PID: os.Getpid(), Env: map[string]string{}}
	if lc != nil {
		r.RequestID, r.ARN = lc.AwsRequestID, lc.InvokedFunctionArn
	}
	if dl, ok := ctx.Deadline(); ok {
		r.RemainingMs = time.Until(dl).Milliseconds()
	}
	for _, k := range env {
		if v, ok := os.LookupEnv(k); ok {
			r.Env[k] = v
		}
	}
	fmt.Println("handled", e.Op, e.Name) // to the function's log
	return r, nil
}

func main() {
	if os.Getenv("LAMBDAFN_NEVER_ASK") != "" {
		time.Sleep(time.Hour) // never asks for an invocation
	}
	if os.Getenv("LAMBDAFN_EXIT_AT_INIT") != "" {
		fmt.Fprintln(os.Stderr, "init: giving up")
		os.Exit(1)
	}
	lambda.Start(handle)
}
