package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/driver/docker"
	"nimbus/internal/function"
)

// benchImage runs bench/fn in a container, FROM scratch.
const benchImage = "nimbus-bench/fn:local"

// dockerSetup builds the image and starts one container directly (the
// baseline for the hop into a container). It returns nil when no engine
// answers.
func dockerSetup(fnBin string) (*docker.Driver, driver.Instance, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := docker.New(ctx, docker.Options{Owner: "nimbus-bench", Network: "nimbus-bench"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "no Docker engine, skipping the docker column:", err)
		return nil, nil, nil
	}
	dir, err := os.MkdirTemp("", "bench-image-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	b, err := os.ReadFile(fnBin)
	if err != nil {
		return nil, nil, err
	}
	os.WriteFile(filepath.Join(dir, "fn"), b, 0o755)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY fn /fn\nENV FN_ALL_INTERFACES=1\nUSER 65534:65534\nENTRYPOINT [\"/fn\"]\n"), 0o644)
	if err := d.BuildImage(ctx, dir, benchImage); err != nil {
		return nil, nil, err
	}
	fn := function.Function{Name: "direct", Runtime: function.RuntimeDocker, Image: benchImage}.WithDefaults()
	inst, err := d.Start(ctx, driver.Spec{Function: fn, Revision: 1})
	if err != nil {
		return nil, nil, err
	}
	return d, inst, nil
}
