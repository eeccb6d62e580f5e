package process

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/driver/drivertest"
)

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nimbus is not running as root here: functions share its user, so there is no isolation to test")
	}
}

func call(t *testing.T, inst driver.Instance, path string) string {
	t.Helper()
	code, body, err := drivertest.Call(inst, "GET", path, "")
	if err != nil || code != 200 {
		t.Fatalf("GET %s: %d %v %s", path, code, err, body)
	}
	return body
}

// TestIsolation: two functions, each with a secret and files of its own,
// run as different unprivileged users; one cannot read or write the
// other's package, secrets or files, list its directory, read its
// /proc/PID/environ, or signal its process. Each can reach its own.
func TestIsolation(t *testing.T) {
	needRoot(t)
	d := newDriver(t, drivertest.StateDir(t))
	start := func(name, secret string) driver.Instance {
		s := testSpec(t, name)
		s.Function.Secrets = []string{secret}
		s.Secrets = map[string][]byte{secret: []byte(name + "'s secret")}
		inst, err := d.Start(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { inst.Stop(context.Background()) })
		return inst
	}
	a, b := start("fa", "key-a"), start("fb", "key-b")
	uidA, uidB := call(t, a, "/whoami"), call(t, b, "/whoami")
	if uidA == uidB || uidA == "0" || uidB == "0" {
		t.Fatalf("functions run as uids %s and %s: want two different unprivileged users", uidA, uidB)
	}
	if n, _ := strconv.Atoi(uidA); uint32(n) < DefaultUIDs.First || uint32(n) > DefaultUIDs.Last {
		t.Fatalf("uid %s is outside the documented range %v", uidA, DefaultUIDs)
	}
	where := strings.Split(call(t, b, "/where"), "\n")
	pkgB, secretsB, tmpB := where[0], where[1], where[2]
	pidB := call(t, b, "/pid")
	if got := call(t, b, "/probe?op=write&path="+url.QueryEscape(tmpB+"/mine")); got != "ok" {
		t.Fatalf("a function cannot write its own TMPDIR: %s", got)
	}
	// The function's directory: root's, 0710 with the function's group,
	// under the state's root; what is in it is the function's, 0700.
	home := filepath.Dir(pkgB)
	if fi, err := os.Stat(home); err != nil || fi.Mode().Perm() != 0o710 || fi.Sys().(*syscall.Stat_t).Uid != 0 || fmt.Sprint(fi.Sys().(*syscall.Stat_t).Gid) != uidB {
		t.Fatalf("function directory %s: %v %+v (want 0710, root's, group %s) %v", home, fi.Mode(), fi.Sys(), uidB, err)
	}
	for _, p := range []string{pkgB, tmpB} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 || fmt.Sprint(fi.Sys().(*syscall.Stat_t).Uid) != uidB {
			t.Fatalf("%s: %v (want 0700, owned by %s) %v", p, fi.Mode(), uidB, err)
		}
	}
	// Nor can B itself rename, replace or add what nimbus keeps in its
	// directory: a link put there would point nimbus's own (root's) work
	// on secrets and packages elsewhere.
	for what, probe := range map[string]string{
		"rename its secrets": "op=rename&path=" + url.QueryEscape(secretsB) + "&to=" + url.QueryEscape(home+"/moved"),
		"rename its package": "op=rename&path=" + url.QueryEscape(pkgB) + "&to=" + url.QueryEscape(home+"/moved"),
		"link from its dir":  "op=symlink&path=" + url.QueryEscape(home+"/secrets-next") + "&to=/etc",
		"write into its dir": "op=write&path=" + url.QueryEscape(home+"/file"),
	} {
		got := call(t, b, "/probe?"+probe)
		if got == "ok" || !strings.Contains(got, "permission denied") {
			t.Errorf("B could %s: %q", what, got)
		}
	}
	for _, p := range []string{pkgB, secretsB, tmpB} {
		if !strings.HasPrefix(p, home+"/") {
			t.Fatalf("%s is not inside the function's directory %s", p, home)
		}
	}
	for what, probe := range map[string]string{
		"read B's program":     "op=read&path=" + url.QueryEscape(pkgB+"/testfn"),
		"list B's package":     "op=list&path=" + url.QueryEscape(pkgB),
		"list B's directory":   "op=list&path=" + url.QueryEscape(home),
		"read B's secret":      "op=read&path=" + url.QueryEscape(secretsB+"/key-b"),
		"read B's file":        "op=read&path=" + url.QueryEscape(tmpB+"/mine"),
		"write into B's tmp":   "op=write&path=" + url.QueryEscape(tmpB+"/evil"),
		"replace B's program":  "op=write&path=" + url.QueryEscape(pkgB+"/testfn"),
		"read B's environment": "op=read&path=/proc/" + pidB + "/environ",
		"signal B's process":   "op=signal&pid=" + pidB,
	} {
		got := call(t, a, "/probe?"+probe)
		if got == "ok" || !strings.Contains(got, "permission denied") && !strings.Contains(got, "not permitted") {
			t.Errorf("A could %s: %q", what, got)
		}
	}
	// B is unharmed, and A reaches its own secret.
	if got := call(t, b, "/secret?name=key-b"); got != "fb's secret" {
		t.Fatalf("B's secret: %q", got)
	}
	if got := call(t, a, "/secret?name=key-a"); got != "fa's secret" {
		t.Fatalf("A's own secret: %q", got)
	}
	// Deleting a function removes its directory.
	b.Stop(context.Background())
	if err := d.Forget("default", "fb"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Fatalf("a deleted function's directory is left: %v", err)
	}
}

// gone reports whether a process has exited (a zombie waiting for a
// reaper counts as exited).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

// TestNothingOutlivesItsInstance: a child that left the instance's process
// group and session (setsid) is killed when the instance stops, and when
// the instance's process dies on its own.
func TestNothingOutlivesItsInstance(t *testing.T) {
	needRoot(t)
	d := newDriver(t, drivertest.StateDir(t))
	if d.cg == nil {
		t.Skipf("cgroups are off here (%v): only process groups are used", d.cgErr)
	}
	for _, how := range []string{"stop", "crash"} {
		inst, err := d.Start(context.Background(), testSpec(t, "spawner"))
		if err != nil {
			t.Fatal(err)
		}
		child, _ := strconv.Atoi(call(t, inst, "/spawn"))
		if child == 0 || gone(child) {
			t.Fatalf("%s: the child did not start", how)
		}
		if how == "stop" {
			inst.Stop(context.Background())
		} else {
			drivertest.Call(inst, "GET", "/crash", "")
			<-inst.Done()
		}
		deadline := time.Now().Add(5 * time.Second)
		for !gone(child) {
			if time.Now().After(deadline) {
				syscall.Kill(child, syscall.SIGKILL)
				t.Fatalf("%s: the setsid child %d outlived its instance", how, child)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
