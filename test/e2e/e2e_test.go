package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestExamples(t *testing.T) {
	n := start(t, dataDir(t))
	cases := []struct {
		name, body, want string
		needs            string
	}{
		{"hello-go", "nimbus", "Hello, nimbus!\n", "go"},
		{"hello-python", "nimbus", "Hello from Python, nimbus!\n", "python3"},
		{"echo-bash", "quiet words", "QUIET WORDS\n", "bash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			need(t, c.needs)
			dir := copyExample(t, c.name)
			out := n.mustCLI("deploy", dir)
			if !strings.Contains(out, "Deployed default/"+c.name) {
				t.Fatalf("deploy said: %s", out)
			}
			code, body, hdr := n.invoke("POST", "/function/"+c.name, c.body)
			if code != 200 || body != c.want || hdr.Get("X-Call-Id") == "" {
				t.Fatalf("invoke over HTTP: %d %q %v", code, body, hdr)
			}
			if got := n.mustCLI("invoke", c.name, "-d", c.body); got != c.want {
				t.Fatalf("nimbus invoke printed %q", got)
			}
			if list := n.mustCLI("list"); !strings.Contains(list, c.name) {
				t.Fatalf("list lacks %s:\n%s", c.name, list)
			}
			var desc struct {
				Function struct {
					Status struct{ Invocations int }
				}
			}
			if err := json.Unmarshal([]byte(n.mustCLI("describe", c.name, "-o", "json")), &desc); err != nil || desc.Function.Status.Invocations != 2 {
				t.Fatalf("describe -o json: %+v %v", desc, err)
			}
			logs := n.mustCLI("logs", c.name)
			if !strings.Contains(logs, "system") {
				t.Fatalf("logs lack the instance's lines:\n%s", logs)
			}
			n.mustCLI("delete", c.name)
			if code, _, _ := n.invoke("GET", "/function/"+c.name, ""); code != 404 {
				t.Fatalf("after delete: %d", code)
			}
		})
	}
}

// TestNewTemplatesDeploy: every `nimbus new` template deploys and answers.
func TestNewTemplatesDeploy(t *testing.T) {
	n := start(t, dataDir(t))
	for lang, prog := range map[string]string{"go": "go", "python": "python3", "node": "node", "bash": "bash"} {
		t.Run(lang, func(t *testing.T) {
			need(t, prog)
			name := "tpl-" + lang
			dir := filepath.Join(t.TempDir(), name)
			n.mustCLI("new", name, "--lang", lang, "--dir", dir)
			n.mustCLI("deploy", dir)
			if code, body, _ := n.invoke("POST", "/function/"+name, "you"); code != 200 || body != "Hello, you!\n" {
				t.Fatalf("%s template: %d %q", lang, code, body)
			}
		})
	}
}

func TestCLIErrorsAndExitCodes(t *testing.T) {
	n := start(t, dataDir(t))
	cases := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"invoke"}, 2, "usage"},
		{[]string{"list", "--bogus"}, 2, "unknown flag"},
		{[]string{"list", "-o", "yaml"}, 2, "--output"},
		{[]string{"new", "Bad_Name", "--lang", "go"}, 2, "DNS-1035"},
		{[]string{"new", "ok", "--lang", "cobol"}, 2, "--lang must be one of"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"describe", "nope"}, 1, "nimbus list"},
		{[]string{"invoke", "nope"}, 1, "404"},
		{[]string{"delete", "nope"}, 1, "not found"},
		{[]string{"deploy", t.TempDir()}, 1, "nimbus new"},
	}
	for _, c := range cases {
		_, errOut, code := n.cli(c.args...)
		if code != c.code || !strings.Contains(errOut, c.says) {
			t.Errorf("nimbus %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errOut, c.code, c.says)
		}
	}
	// An invalid nimbus.yaml: the field is named and nothing is stored.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte("name: bad\ncommand: ./x\nscale:\n  max: 1\n  min: 3\n"), 0o644)
	_, errOut, code := n.cli("deploy", dir)
	if code != 1 || !strings.Contains(errOut, "scale.min") {
		t.Fatalf("invalid manifest: exit %d %q", code, errOut)
	}
	os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte("name: bad\ncommand: ./x\ncolour: red\n"), 0o644)
	if _, errOut, code = n.cli("deploy", dir); code != 1 || !strings.Contains(errOut, "colour") {
		t.Fatalf("unknown field: exit %d %q", code, errOut)
	}
	if out := n.mustCLI("list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("failed deploys stored something: %s", out)
	}
	// A wrong token is refused with a next step.
	_, errOut, code = n.cli("list", "--token", "wrong")
	if code != 1 || !strings.Contains(errOut, "next:") {
		t.Fatalf("wrong token: exit %d %q", code, errOut)
	}
	if out := n.mustCLI("version"); !strings.HasPrefix(out, "nimbus ") {
		t.Fatalf("version: %q", out)
	}
}

func TestLimits(t *testing.T) {
	n := start(t, dataDir(t), "--max-body-bytes", "1000")
	n.mustCLI("deploy", copyExample(t, "echo-bash"))
	if code, _, _ := n.invoke("POST", "/function/echo-bash", strings.Repeat("x", 1001)); code != 413 {
		t.Fatalf("body over the limit: want 413, got %d", code)
	}
	// Twice: the second request may reuse a kept-alive connection.
	for range 2 {
		if code, _, _ := n.invoke("GET", "/function/echo-bash", "", "X-Big", strings.Repeat("h", 70<<10)); code != 431 {
			t.Fatalf("headers over the limit: want 431, got %d", code)
		}
	}
	if code, _, _ := n.invoke("GET", "/v1/functions", ""); code != 401 {
		t.Fatalf("/v1 without a token: want 401, got %d", code)
	}
	fi, err := os.Stat(filepath.Join(n.dataDir, "admin-token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file must be mode 0600: %v %v", fi, err)
	}
	if !strings.Contains(n.out.String(), "shown once") {
		t.Fatalf("first start should show the token once:\n%s", n.out)
	}
}

// TestGracefulShutdownAndRestart: SIGTERM finishes in-flight requests, stops
// instances and exits 0; the next start serves every function, no redeploy.
func TestGracefulShutdownAndRestart(t *testing.T) {
	need(t, "go")
	data := dataDir(t)
	n := start(t, data)
	n.mustCLI("deploy", copyExample(t, "hello-go"))
	n.mustCLI("deploy", copyExample(t, "echo-bash"))
	if code, _, _ := n.invoke("POST", "/function/hello-go", "x"); code != 200 {
		t.Fatal("warm-up failed")
	}
	pids := instancePIDs(t, data)
	if len(pids) == 0 {
		t.Fatal("no instance records")
	}
	// A slow stdio call in flight when SIGTERM arrives still completes.
	slow := filepath.Join(t.TempDir(), "slow")
	os.MkdirAll(slow, 0o755)
	os.WriteFile(filepath.Join(slow, "nimbus.yaml"), []byte("name: slow\nprotocol: stdio\ncommand: bash s.sh\n"), 0o644)
	os.WriteFile(filepath.Join(slow, "s.sh"), []byte("sleep 1; echo done\n"), 0o644)
	n.mustCLI("deploy", slow)
	var wg sync.WaitGroup
	var code int
	var body string
	wg.Go(func() { code, body, _ = n.invoke("POST", "/function/slow", "") })
	time.Sleep(300 * time.Millisecond)
	if exit := n.stop(); exit != 0 {
		t.Fatalf("exit code after SIGTERM: %d\n%s", exit, n.out)
	}
	wg.Wait()
	if code != 200 || body != "done\n" {
		t.Fatalf("in-flight request during shutdown: %d %q", code, body)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("instance %d still runs after shutdown", pid)
		}
	}
	n.launch()
	for i := 0; i < 200 && strings.Count(n.out.String(), "admin token:") < 2; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if out := n.out.String(); strings.Count(out, "shown once") != 1 || !strings.Contains(out, "admin token: in ") {
		t.Fatalf("second start must not show the token again:\n%s", n.out)
	}
	list := n.mustCLI("list")
	for _, fn := range []string{"hello-go", "echo-bash", "slow"} {
		if !strings.Contains(list, fn) {
			t.Fatalf("%s lost across restart:\n%s", fn, list)
		}
	}
	if code, body, _ := n.invoke("POST", "/function/hello-go", "again"); code != 200 || body != "Hello, again!\n" {
		t.Fatalf("after restart: %d %q", code, body)
	}
}

// TestKill9LeavesNoInstances: instances do not outlive a kill -9 of nimbus,
// and the next start reaps their records.
func TestKill9LeavesNoInstances(t *testing.T) {
	need(t, "go")
	data := dataDir(t)
	n := start(t, data)
	n.mustCLI("deploy", copyExample(t, "hello-go"))
	n.invoke("POST", "/function/hello-go", "x")
	pids := instancePIDs(t, data)
	if len(pids) != 1 {
		t.Fatalf("want one instance record, got %v", pids)
	}
	// A function whose instance starts a child that leaves its process
	// group and session (setsid), as a daemon would.
	dir, _ := ledgerFunction(t, "spawner", "")
	n.mustCLI("deploy", dir)
	code, body, _ := n.invoke("GET", "/function/spawner/spawn", "")
	child, _ := strconv.Atoi(body)
	if code != 200 || child == 0 || !alive(child) {
		t.Fatalf("spawn: %d %q", code, body)
	}
	// A file in the function's directory: the restart must remove the
	// killed run's directories, even though the function's replicas (state
	// kept in NATS) come back.
	marker := filepath.Join(data, "functions", "default", "hello-go", "killed-run")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	// Everything dies with nimbus, the setsid child included, before any
	// restart (a guard process kills the instances' cgroups).
	deadline := time.Now().Add(3 * time.Second)
	for _, pid := range append(instancePIDs(t, data), child) {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d survived kill -9 of nimbus", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	n.launch()
	if left := instancePIDs(t, data); len(left) != 0 {
		t.Fatalf("records of the killed run not reaped: %v", left)
	}
	// The killed run's unpacked packages and secrets are gone.
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("function directories of the killed run were not removed: %v", err)
	}
	if code, body, _ := n.invoke("POST", "/function/hello-go", "back"); code != 200 || body != "Hello, back!\n" {
		t.Fatalf("after kill -9 and restart: %d %q", code, body)
	}
}

func instancePIDs(t *testing.T, data string) []int {
	entries, _ := os.ReadDir(filepath.Join(data, "instances"))
	var pids []int
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pid") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(data, "instances", e.Name()))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.Fields(string(b))[0]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid runs (a zombie awaiting its reaper does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] != 'Z'
}
