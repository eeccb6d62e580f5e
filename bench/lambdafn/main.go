// Command lambdafn is the benchmark's trivial AWS Lambda handler: an
// unmodified aws-lambda-go program (lambda.Start) that answers its event,
// the Lambda twin of fn.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(_ context.Context, event json.RawMessage) (json.RawMessage, error) { return event, nil })
}
