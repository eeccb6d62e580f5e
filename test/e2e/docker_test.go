package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// needDocker skips when no Docker engine answers, except in CI, which must
// provide one (.ci/run starts dockerd).
func needDocker(t *testing.T) {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must provide a Docker engine: docker info: %v", err)
		}
		t.Skip("no Docker engine answers (docker info failed): start dockerd to run this test")
	}
}

func TestContainerExample(t *testing.T) {
	needDocker(t)
	need(t, "go")
	n := start(t, t.TempDir())
	if !strings.Contains(n.out.String(), "docker (engine at") {
		t.Fatalf("nimbus up does not say runtime docker is on:\n%s", n.out)
	}
	n.mustCLI("deploy", copyExample(t, "hello-container"))
	code, body, _ := n.invoke("POST", "/function/hello-container", "e2e")
	if code != 200 || body != "Hello from a container, e2e!\n" {
		t.Fatalf("container function: %d %q\n%s", code, body, n.out)
	}
	out, _ := exec.Command("docker", "ps", "--filter", "label=io.nimbus.function=hello-container", "--format", "{{.ID}}").Output()
	if strings.TrimSpace(string(out)) == "" {
		t.Fatal("no labelled container runs the function")
	}
	n.mustCLI("delete", "hello-container")
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := exec.Command("docker", "ps", "-a", "--filter", "label=io.nimbus.function=hello-container", "--format", "{{.ID}}").Output()
		if strings.TrimSpace(string(out)) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container left after delete: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDockerRuntimeWithoutEngine: with no engine, nimbus says so at start and
// a container deploy fails with a 400 that says how to enable one.
func TestDockerRuntimeWithoutEngine(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	n := start(t, t.TempDir())
	if !strings.Contains(n.out.String(), "docker off") {
		t.Fatalf("nimbus up does not say runtime docker is off:\n%s", n.out)
	}
	dir := t.TempDir()
	os.WriteFile(dir+"/nimbus.yaml", []byte("name: boxed\nruntime: docker\nimage: alpine:3\n"), 0o644)
	_, errOut, code := n.cli("deploy", dir)
	if code != 1 || !strings.Contains(errOut, "dockerd") {
		t.Fatalf("deploy without an engine: exit %d %q", code, errOut)
	}
	if list := n.mustCLI("list"); strings.Contains(list, "boxed") {
		t.Fatal("a failed deploy stored the function")
	}
}
