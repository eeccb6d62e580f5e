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
	n := start(t, dataDir(t))
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
	waitContainers(t, "hello-container", 0, "after delete")

	// kill -9 leaves the container; the next start removes it, and the
	// function then runs in exactly one new container (its replica count
	// is state, so it comes back).
	n.mustCLI("deploy", copyExample(t, "hello-container"))
	n.invoke("POST", "/function/hello-container", "x")
	old := waitContainers(t, "hello-container", 1, "after a call")
	n.cmd.Process.Kill()
	<-n.exited
	n.launch()
	if code, _, _ := n.invoke("POST", "/function/hello-container", "y"); code != 200 {
		t.Fatalf("after restart: %d", code)
	}
	if now := waitContainers(t, "hello-container", 1, "after a call on the restarted nimbus"); now[0] == old[0] {
		t.Fatalf("the killed run's container %s still runs the function", old[0])
	}
	// SIGTERM removes the containers it runs.
	if code := n.stop(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	waitContainers(t, "hello-container", 0, "after SIGTERM")
}

// waitContainers waits until exactly want containers carry the function's
// label, and returns their ids.
func waitContainers(t *testing.T, fn string, want int, when string) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := exec.Command("docker", "ps", "-a", "--filter", "label=io.nimbus.function="+fn, "--format", "{{.ID}}").Output()
		ids := strings.Fields(string(out))
		if len(ids) == want {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d containers of %s %s, want %d", len(ids), fn, when, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDockerRuntimeWithoutEngine: with no engine, nimbus says so at start and
// a container deploy fails with a 400 that says how to enable one.
func TestDockerRuntimeWithoutEngine(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	n := start(t, dataDir(t))
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
