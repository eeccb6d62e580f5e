package events

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestLocalLambda: which nimbus function an awslambda function is when
// nimbus's own Lambda API serves it, and when it takes the signed path.
func TestLocalLambda(t *testing.T) {
	const arn = "arn:aws:lambda:us-east-1:000000000000:function:"
	fn := func(a string, keyed bool) Function {
		f := Function{FunctionID: "f", Type: TypeAWSLambda, Provider: Provider{ARN: a, Region: "us-east-1"}}
		if keyed {
			f.Provider.AWSAccessKeyID, f.Provider.AWSSecretAccessKey = "AKIA", "secret"
		}
		return f
	}
	d := &Deliverer{}
	for _, c := range []struct {
		space, arn string
		keyed      bool
		name, err  string // name "" and err "": the signed path
	}{
		{"default", arn + "hello", false, "hello", ""},
		{"default", arn + "hello:$LATEST", false, "hello", ""},
		{"default", arn + "default_hello", false, "hello", ""},
		{"team-a", arn + "team-a_hello", false, "hello", ""},
		{"default", arn + "team-a_hello", false, "", "namespace \"team-a\""},
		{"default", arn + "hello:live", false, "", "$LATEST only"},
		{"default", arn + "hello--v1", false, "", "names no nimbus function"},
		{"default", "arn:aws:lambda:eu-west-1:000000000000:function:hello", false, "", "--lambda-endpoint"},
		{"default", "arn:aws:lambda:us-east-1:123456789012:function:hello", false, "", "account 123456789012"},
		{"default", arn + "Hello", false, "", "names no nimbus function"},
		{"default", arn + "team-a_hello", true, "", ""},
	} {
		name, local, err := d.localLambda(context.Background(), c.space, fn(c.arn, c.keyed))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !local):
			t.Errorf("%s in %s: %q %v %v, want an error with %q", c.arn, c.space, name, local, err, c.err)
		case c.err == "" && c.name == "" && (local || err != nil):
			t.Errorf("%s keyed: local %v %v, want the signed path", c.arn, local, err)
		case c.err == "" && c.name != "" && (name != c.name || !local || err != nil):
			t.Errorf("%s in %s: %q %v %v, want %q", c.arn, c.space, name, local, err, c.name)
		}
	}
	// With versions: a qualifier resolves to the function that runs it.
	d.Qualified = func(_ context.Context, ns, name, q string) (string, error) {
		if ns == "default" && name == "hello" && q == "live" {
			return "hello--v3", nil
		}
		return "", errors.New("no such version")
	}
	if name, _, err := d.localLambda(context.Background(), "default", fn(arn+"hello:live", false)); err != nil || name != "hello--v3" {
		t.Errorf("an alias: %q %v", name, err)
	}
	if _, _, err := d.localLambda(context.Background(), "default", fn(arn+"hello:beta", false)); err == nil || !strings.Contains(err.Error(), "no such version") {
		t.Errorf("an unknown alias: %v", err)
	}
	// With another endpoint nothing is local.
	remote := &Deliverer{LambdaRemote: true}
	if _, local, _ := remote.localLambda(context.Background(), "default", fn(arn+"hello", false)); local {
		t.Error("resolved locally with --lambda-endpoint set")
	}
}

func TestParseLambdaARN(t *testing.T) {
	a, err := ParseLambdaARN("arn:aws:lambda:eu-west-1:123456789012:function:my_fn:prod")
	if err != nil || a != (LambdaARN{"aws", "eu-west-1", "123456789012", "my_fn", "prod"}) {
		t.Fatalf("%+v %v", a, err)
	}
	for _, bad := range []string{"", "hello", "arn:aws:s3:::bucket", "arn:aws:lambda:us-east-1:000000000000:layer:x",
		"arn:aws:lambda:useast:000000000000:function:x", "arn:aws:lambda:us-east-1:0:function:x",
		"arn:aws:lambda:us-east-1:000000000000:function:x y", "arn:aws:lambda:us-east-1:000000000000:function:x:a:b",
		"arn:aws:lambda:us-east-1:000000000000:function:x:\x00", "arn:evil:lambda:us-east-1:000000000000:function:x"} {
		if _, err := ParseLambdaARN(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
