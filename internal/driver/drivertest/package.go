package drivertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"nimbus/internal/archive"
)

// built is a program built once per test process and packed alone as a
// function package.
type built struct {
	pkg, file string // the Go package, and the file name it is built as
	once      sync.Once
	dir       string
	bytes     []byte
	digest    string
	err       error
}

var (
	testfn   = &built{pkg: "nimbus/internal/driver/drivertest/testfn", file: "testfn"}
	lambdafn = &built{pkg: "nimbus/internal/driver/drivertest/lambdafn", file: "bootstrap"}
)

// get builds and packs b once, and returns its digest and a function that
// serves its bytes.
func (b *built) get(t *testing.T) (string, func(context.Context, string) (io.ReadCloser, error)) {
	t.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", b.file+"-")
		if b.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(b.dir, b.file), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
			return
		}
		var buf bytes.Buffer
		if _, b.err = archive.Pack(b.dir, &buf); b.err != nil {
			return
		}
		b.bytes = buf.Bytes()
		sum := sha256.Sum256(b.bytes)
		b.digest = "sha256:" + hex.EncodeToString(sum[:])
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.digest, func(_ context.Context, d string) (io.ReadCloser, error) {
		if d != b.digest {
			return nil, fmt.Errorf("no package %s", d)
		}
		return io.NopCloser(bytes.NewReader(b.bytes)), nil
	}
}

// Main runs a package's tests and then removes testfn's build: a package
// whose tests use TestPackage or TestBinary calls it from its TestMain, so
// that go test leaves no temporary directory behind.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Cleanup removes the builds of testfn and lambdafn (Main calls it).
func Cleanup() {
	for _, b := range []*built{testfn, lambdafn} {
		if b.dir != "" {
			os.RemoveAll(b.dir)
		}
	}
}

// TestBinary builds testfn (once per test process) and returns its path.
func TestBinary(t *testing.T) string {
	t.Helper()
	testfn.get(t)
	return filepath.Join(testfn.dir, testfn.file)
}

// TestPackage builds testfn and packs it as a function package; it returns
// the package digest and a function that serves its bytes.
func TestPackage(t *testing.T) (string, func(context.Context, string) (io.ReadCloser, error)) {
	t.Helper()
	return testfn.get(t)
}

// LambdaPackage builds lambdafn, an unmodified AWS Lambda handler, as
// "bootstrap" (as provided.al2023 names it) and packs it as a function
// package of its own, as TestPackage does testfn.
func LambdaPackage(t *testing.T) (string, func(context.Context, string) (io.ReadCloser, error)) {
	t.Helper()
	return lambdafn.get(t)
}

// StateDir is a temporary directory for a driver's state whose every
// parent lets other users through, as a driver running functions as users
// of their own needs (t.TempDir's parent is private to root). It is removed
// when the test ends.
func StateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nimbus-state-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711)
	t.Cleanup(func() { os.RemoveAll(dir) })
	state := filepath.Join(dir, "instances")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	return state
}
