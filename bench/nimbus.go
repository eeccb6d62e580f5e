package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"nimbus/internal/archive"
	"nimbus/internal/client"
	"nimbus/internal/function"
)

// nimbusProc is a `nimbus up` the benchmark started.
type nimbusProc struct {
	cmd    *exec.Cmd
	url    string
	client *client.Client
}

func startNimbus(bin, dataDir string, env []string) (*nimbusProc, error) {
	return startNimbusWith(bin, dataDir, env)
}

// startNimbusWith starts nimbus with extra flags.
func startNimbusWith(bin, dataDir string, env []string, extra ...string) (*nimbusProc, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	cmd, err := startProc(env, bin, append([]string{"up", "--listen", addr, "--data-dir", dataDir, "--events-listen", "off"}, extra...)...)
	if err != nil {
		return nil, err
	}
	n := &nimbusProc{cmd: cmd, url: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(n.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			stopProc(cmd)
			return nil, fmt.Errorf("nimbus did not become ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		return nil, err
	}
	n.client = &client.Client{URL: n.url, Token: strings.TrimSpace(string(tok))}
	return n, nil
}

// deployFn packs the fn binary and deploys it under name with mod applied.
func (n *nimbusProc) deployFn(fnBin, name string, mod func(*function.Function)) error {
	return n.deployFile(fnBin, "fn", name, mod)
}

// deployFile deploys a package holding bin as file (./fn or ./bootstrap).
func (n *nimbusProc) deployFile(bin, file, name string, mod func(*function.Function)) error {
	dir, err := os.MkdirTemp("", "bench-pkg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, file), b, 0o755); err != nil {
		return err
	}
	var pkg bytes.Buffer
	if _, err := archive.Pack(dir, &pkg); err != nil {
		return err
	}
	ctx := context.Background()
	digest, err := n.client.UploadPackage(ctx, &pkg)
	if err != nil {
		return err
	}
	fn := function.Function{Name: name, Command: []string{"./fn"}, Package: digest}
	if mod != nil {
		mod(&fn)
	}
	_, _, err = n.client.Deploy(ctx, fn)
	return err
}

// waitInstances polls until the function has exactly want instances.
func (n *nimbusProc) waitInstances(name string, want int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		list, err := n.client.Instances(context.Background(), "", name)
		if err == nil && len(list) == want {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not reach %d instances within %s", name, want, within)
}

// deployDocker deploys the benchmark image as a container function.
func (n *nimbusProc) deployDocker(name string, mod func(*function.Function)) error {
	fn := function.Function{Name: name, Runtime: function.RuntimeDocker, Image: benchImage}
	if mod != nil {
		mod(&fn)
	}
	_, _, err := n.client.Deploy(context.Background(), fn)
	return err
}
