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

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	pkgBytes  []byte
	pkgDigest string
	buildErr  error
)

// Main runs a package's tests and then removes testfn's build: a package
// whose tests use TestPackage or TestBinary calls it from its TestMain, so
// that go test leaves no temporary directory behind.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Cleanup removes testfn's build, and lambdafn's (Main calls it).
func Cleanup() {
	if lambdaDir != "" {
		os.RemoveAll(lambdaDir)
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// TestBinary builds testfn (once per test process) and returns its path.
func TestBinary(t *testing.T) string {
	t.Helper()
	TestPackage(t)
	return binPath
}

// TestPackage builds testfn and packs it as a function package; it returns
// the package digest and a function that serves its bytes.
func TestPackage(t *testing.T) (string, func(context.Context, string) (io.ReadCloser, error)) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "testfn-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		binPath = filepath.Join(dir, "testfn") // removed by Main when the package's tests end
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "testfn"), "nimbus/internal/driver/drivertest/testfn")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build testfn: %v\n%s", err, out)
			return
		}
		var buf bytes.Buffer
		if _, err := archive.Pack(dir, &buf); err != nil {
			buildErr = err
			return
		}
		pkgBytes = buf.Bytes()
		sum := sha256.Sum256(pkgBytes)
		pkgDigest = "sha256:" + hex.EncodeToString(sum[:])
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return pkgDigest, func(_ context.Context, d string) (io.ReadCloser, error) {
		if d != pkgDigest {
			return nil, fmt.Errorf("no package %s", d)
		}
		return io.NopCloser(bytes.NewReader(pkgBytes)), nil
	}
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

var (
	lambdaOnce   sync.Once
	lambdaDir    string
	lambdaBytes  []byte
	lambdaDigest string
	lambdaErr    error
)

// LambdaPackage builds lambdafn, an unmodified AWS Lambda handler, as
// "bootstrap" (as provided.al2023 names it) and packs it as a function
// package of its own; it returns the digest and a function that serves
// its bytes.
func LambdaPackage(t *testing.T) (string, func(context.Context, string) (io.ReadCloser, error)) {
	t.Helper()
	lambdaOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lambdafn-")
		if err != nil {
			lambdaErr = err
			return
		}
		lambdaDir = dir
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "bootstrap"), "nimbus/internal/driver/drivertest/lambdafn")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			lambdaErr = fmt.Errorf("build lambdafn: %v\n%s", err, out)
			return
		}
		var buf bytes.Buffer
		if _, err := archive.Pack(dir, &buf); err != nil {
			lambdaErr = err
			return
		}
		lambdaBytes = buf.Bytes()
		sum := sha256.Sum256(lambdaBytes)
		lambdaDigest = "sha256:" + hex.EncodeToString(sum[:])
	})
	if lambdaErr != nil {
		t.Fatal(lambdaErr)
	}
	return lambdaDigest, func(_ context.Context, d string) (io.ReadCloser, error) {
		if d != lambdaDigest {
			return nil, fmt.Errorf("no package %s", d)
		}
		return io.NopCloser(bytes.NewReader(lambdaBytes)), nil
	}
}
