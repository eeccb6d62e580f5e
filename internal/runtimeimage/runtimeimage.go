// Package runtimeimage makes the image the kube runtime runs packages in:
// nimbus-watchdog (static, the watchdog alone) as the entrypoint, which
// fetches the function's package by digest from the nimbus API, checks
// and unpacks it, then runs the function's command in it. FROM scratch by
// default (enough for static binaries, such as a Go function built with
// CGO_ENABLED=0); on top of a root filesystem given as a tar (a Debian
// one made by debootstrap, with interpreters) for everything else.
package runtimeimage

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"nimbus/internal/ociimage"
)

// Watchdog is where the image holds nimbus-watchdog.
const Watchdog = "/nimbus-watchdog"

// Entrypoint is the image's entrypoint; the function's command follows it
// (the container's args).
var Entrypoint = []string{Watchdog, "--fetch", "--"}

// Build writes the image, tagged ref, as an OCI archive to w: the root
// filesystem tar base (nil for none) under a layer holding the
// nimbus-watchdog binary at watchdog.
func Build(w io.Writer, ref, watchdog string, base []byte) error {
	top, err := ociimage.Layer(ociimage.File{Path: Watchdog, From: watchdog})
	if err != nil {
		return err
	}
	layers := [][]byte{top}
	if base != nil {
		layers = [][]byte{base, top}
	}
	return ociimage.Write(w, ociimage.Image{Ref: ref, Layers: layers, Config: ociimage.Config{
		Entrypoint: Entrypoint,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		WorkingDir: "/",
	}})
}

// BuildWatchdog compiles nimbus-watchdog, static, into dir with the Go
// toolchain on PATH (run inside this module) and returns its path.
func BuildWatchdog(dir string) (string, error) {
	out := filepath.Join(dir, "nimbus-watchdog")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "nimbus/cmd/nimbus-watchdog")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building nimbus-watchdog: %v\n%s", err, b)
	}
	return out, nil
}
