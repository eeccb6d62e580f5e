package watchdogcmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"nimbus/internal/archive"
)

// The environment the kube runtime gives a package function's pod.
const (
	envPackage = "NIMBUS_PACKAGE"       // the package's digest
	envURL     = "NIMBUS_PACKAGE_URL"   // the nimbus API's GET /v1/packages/DIGEST
	envToken   = "NIMBUS_PACKAGE_TOKEN" // the package's fetch token
	envDir     = "NIMBUS_PACKAGE_DIR"   // where to unpack it
)

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// maxFetchBytes bounds what a fetch reads: more than the nimbus API takes
// in an upload (256 MiB by default) is not a package.
var maxFetchBytes int64 = 1 << 30

// fetchWait bounds the retries of a fetch that fails for a cause that may
// pass (nimbus restarting, the network not yet up in a new pod).
const fetchWait = 2 * time.Minute

// fetchPackage fetches the package the environment names, checks its
// digest, unpacks it into its directory and makes that the working
// directory; it takes the URL and token out of the environment, so that
// the function does not see them. It returns the directory.
func fetchPackage(ctx context.Context, stderr io.Writer) (string, error) {
	digest, url, token := os.Getenv(envPackage), os.Getenv(envURL), os.Getenv(envToken)
	dir := os.Getenv(envDir)
	if dir == "" {
		dir = "/nimbus/fn"
	}
	if !digestRE.MatchString(digest) {
		return "", fmt.Errorf("$%s is %q: want the package's digest, sha256: and 64 lowercase hex digits", envPackage, digest)
	}
	if url == "" {
		return "", fmt.Errorf("$%s is empty: want the nimbus API's URL of the package", envURL)
	}
	os.Unsetenv(envURL)
	os.Unsetenv(envToken)
	began := time.Now()
	// A container restarted in its pod finds what it unpacked before (the
	// directory is the pod's): start again from nothing.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("the package directory %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return "", fmt.Errorf("emptying the package directory %s: %w", dir, err)
		}
	}
	spool, err := os.CreateTemp(dir, ".nimbus-package-*")
	if err != nil {
		return "", fmt.Errorf("the package directory %s is not writable: %w", dir, err)
	}
	defer spool.Close()
	// Unlinked while still open: the package may hold any name, and the
	// spool is gone however this ends.
	os.Remove(spool.Name())
	size, err := download(ctx, url, token, digest, spool, stderr)
	if err != nil {
		return "", err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	sum, err := archive.Unpack(spool, dir, archive.Limits{})
	if err != nil {
		return "", fmt.Errorf("unpacking package %s: %w", digest, err)
	}
	if err := os.Chdir(dir); err != nil {
		return "", err
	}
	fmt.Fprintf(stderr, "nimbus-watchdog: fetched package %s (%d bytes, %d files) in %s\n", digest[:19], size, sum.Files, time.Since(began).Round(time.Millisecond))
	return dir, nil
}

// download writes the package at url to w, retrying what may pass, and
// checks that its bytes have the digest.
func download(ctx context.Context, url, token, digest string, w *os.File, log io.Writer) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	client := &http.Client{Timeout: time.Minute}
	wait := 100 * time.Millisecond
	for {
		n, err, again := fetchOnce(ctx, client, url, token, digest, w)
		if err == nil || !again {
			return n, err
		}
		fmt.Fprintf(log, "nimbus-watchdog: fetching the package: %v; retrying\n", err)
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("fetching package %s from %s: %w (gave up after %s)", digest, url, err, fetchWait)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
		if err := w.Truncate(0); err != nil {
			return 0, err
		}
		if _, err := w.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
	}
}

// fetchOnce is one attempt; again says whether another may succeed.
func fetchOnce(ctx context.Context, client *http.Client, url, token, digest string, w io.Writer) (n int64, err error, again bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("$%s: %w", envURL, err), false
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err, ctx.Err() == nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		err := fmt.Errorf("fetching package %s: %s from %s: %s", digest, resp.Status, url, strings.TrimSpace(string(b)))
		return 0, err, resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
	}
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, maxFetchBytes+1))
	if err != nil {
		return n, fmt.Errorf("fetching package %s: %w", digest, err), true
	}
	if n > maxFetchBytes {
		return n, fmt.Errorf("the package fetched from %s is over %d bytes, more than nimbus accepts: refused", url, maxFetchBytes), false
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, fmt.Errorf("the package fetched from %s has digest %s, not %s: refused", url, got, digest), false
	}
	return n, nil, false
}
