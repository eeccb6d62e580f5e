package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"nimbus/internal/driver/drivertest"
)

// TestMain runs the tests, then checks that they left nothing behind —
// no container or network of the nimbuses they started, no process, cgroup
// or mount of theirs, no temporary directory — and fails naming what is
// left.
func TestMain(m *testing.M) {
	before := tempEntries()
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	drivertest.Cleanup()
	if left := leftovers(before); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: the tests left behind:\n  %s\n", strings.Join(left, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

var (
	dirsMu   sync.Mutex
	dataDirs []string            // every data dir a nimbus of these tests used
	owners   = map[string]bool{} // their owner ids (the data dirs are gone by the end)
)

func registerDataDir(dir string) {
	dirsMu.Lock()
	defer dirsMu.Unlock()
	if !slices.Contains(dataDirs, dir) {
		dataDirs = append(dataDirs, dir)
	}
}

// registerOwner notes the owner id of a started nimbus, which labels its
// containers and network.
func registerOwner(dir string) {
	if b, err := os.ReadFile(filepath.Join(dir, "owner-id")); err == nil {
		dirsMu.Lock()
		owners[strings.TrimSpace(string(b))] = true
		dirsMu.Unlock()
	}
}

// tempEntries lists the temporary directory's entries the e2e tests (and
// the nimbuses they start) may create.
func tempEntries() map[string]bool {
	out := map[string]bool{}
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		for _, prefix := range []string{"nimbus-e2e-", "nimbus-ledger-", "nimbus-docker-secrets-", "nimbus-packages-"} {
			if strings.HasPrefix(e.Name(), prefix) {
				out[e.Name()] = true
			}
		}
	}
	return out
}

func leftovers(before map[string]bool) []string {
	var left []string
	for name := range tempEntries() {
		if !before[name] {
			left = append(left, "temporary directory "+filepath.Join(os.TempDir(), name))
		}
	}
	dirsMu.Lock()
	dirs := slices.Clone(dataDirs)
	dirsMu.Unlock()
	cgroups := map[string]bool{}
	for _, d := range dirs {
		sum := sha256.Sum256([]byte(filepath.Join(d, "instances")))
		cgroups["nimbus-"+hex.EncodeToString(sum[:6])] = true
	}
	left = append(left, dockerLeftovers(owners)...)
	left = append(left, processLeftovers(dirs, cgroups)...)
	left = append(left, cgroupLeftovers(cgroups)...)
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			for _, d := range dirs {
				if strings.Contains(line, " "+d) {
					left = append(left, "mount "+line)
				}
			}
		}
	}
	slices.Sort(left)
	return left
}

// dockerLeftovers lists containers and networks of the tests' nimbuses.
func dockerLeftovers(owners map[string]bool) []string {
	if _, err := exec.LookPath("docker"); err != nil || exec.Command("docker", "info").Run() != nil {
		return nil
	}
	var left []string
	for owner := range owners {
		for _, what := range [][]string{
			{"container", "ps", "-a", "--filter", "label=io.nimbus.owner=" + owner, "--format", "{{.Names}} ({{.Status}})"},
			{"network", "network", "ls", "--filter", "label=io.nimbus.owner=" + owner, "--format", "{{.Name}}"},
		} {
			out, err := exec.Command("docker", what[1:]...).Output()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if line != "" {
					left = append(left, what[0]+" "+line)
				}
			}
		}
	}
	return left
}

// processLeftovers lists live processes of the tests: the built nimbus,
// anything whose working directory is in a data dir (function instances),
// and cgroup guards of the tests' nimbuses.
func processLeftovers(dirs []string, cgroups map[string]bool) []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		stat, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue // exited, waiting for a reaper
		}
		cmdline, _ := os.ReadFile(p + "/cmdline")
		cmd := strings.ReplaceAll(strings.TrimSpace(string(cmdline)), "\x00", " ")
		exe, _ := os.Readlink(p + "/exe")
		cwd, _ := os.Readlink(p + "/cwd")
		hit := binPath != "" && strings.HasPrefix(exe, binPath)
		for _, d := range dirs {
			hit = hit || strings.HasPrefix(cwd, d+"/") || cwd == d
		}
		for cg := range cgroups {
			hit = hit || strings.Contains(cmd, "/"+cg)
		}
		if hit {
			left = append(left, fmt.Sprintf("process %s: %s (in %s)", filepath.Base(p), cmd, cwd))
		}
	}
	return left
}

// cgroupLeftovers lists cgroups of the tests' nimbuses.
func cgroupLeftovers(cgroups map[string]bool) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var left []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if !slices.Contains(f, "cgroup2") || len(f) < 5 {
			continue
		}
		filepath.WalkDir(f[4], func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			// A driver's cgroup is "nimbus-HASH-PID".
			if i := strings.LastIndexByte(d.Name(), '-'); i > 0 && cgroups[d.Name()[:i]] {
				left = append(left, "cgroup "+p)
				return filepath.SkipDir
			}
			return nil
		})
	}
	return left
}
