package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestExternalNATS: a second nimbus given --nats-url uses the first one's
// NATS through the same code path as the embedded default, so a function
// deployed through either gateway is served by both.
func TestExternalNATS(t *testing.T) {
	natsAddr := freeAddr(t)
	a := start(t, dataDir(t), "--nats-listen", natsAddr)
	b := start(t, dataDir(t), "--nats-url", "nats://"+natsAddr)
	// b has its own data dir (token, instances) but a's state.
	b.mustCLI("deploy", copyExample(t, "echo-bash"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, _ := a.invoke("POST", "/function/echo-bash", "shared")
		if code == 200 && body == "SHARED\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("function deployed through b not served by a: %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if list := a.mustCLI("list"); !strings.Contains(list, "echo-bash") {
		t.Fatalf("a does not list b's deploy:\n%s", list)
	}
	if code, body, _ := b.invoke("POST", "/function/echo-bash", "too"); code != 200 || body != "TOO\n" {
		t.Fatalf("b: %d %q", code, body)
	}
}

// TestLogsFollowAndEnvConfig: `nimbus logs -f` prints lines as they come, and
// the CLI finds nimbus through NIMBUS_URL and NIMBUS_TOKEN when the data dir
// has neither.
func TestLogsFollowAndEnvConfig(t *testing.T) {
	data := dataDir(t)
	n := start(t, data)
	n.mustCLI("deploy", copyExample(t, "echo-bash"))
	tok, err := os.ReadFile(data + "/admin-token")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(n.bin, "logs", "echo-bash", "-f", "--data-dir", t.TempDir())
	cmd.Env = append(testEnv(), "NIMBUS_URL="+n.URL, "NIMBUS_TOKEN="+strings.TrimSpace(string(tok)))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(200 * time.Millisecond) // following before the call is made
	marker := fmt.Sprint("marker-", time.Now().UnixNano())
	n.invoke("POST", "/function/echo-bash", marker)
	want := fmt.Sprintf("got %d bytes", len(marker))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("logs -f ended")
			}
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatalf("logs -f never printed %q", want)
		}
	}
}
