// Package images makes nimbus's container images from this module, as OCI
// archives (internal/ociimage), with no registry and no image builder:
//
//   - the runtime image the kube runtime runs packages in: nimbus-watchdog
//     (static, the watchdog alone) as the entrypoint, which fetches the
//     function's package by digest from the nimbus API, checks and unpacks
//     it, then runs the function's command in it. FROM scratch by default
//     (enough for static binaries, such as a Go function built with
//     CGO_ENABLED=0); on top of a root filesystem tar (a Debian one made by
//     debootstrap, with interpreters) for everything else;
//   - the nimbus image (the static nimbus binary) and a NATS server image
//     (nats-server built from the module nimbus embeds), which
//     deploy/kubernetes runs.
package images

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"nimbus/internal/ociimage"
)

// Watchdog is where the runtime image holds nimbus-watchdog.
const Watchdog = "/nimbus-watchdog"

// Entrypoint is the runtime image's entrypoint; the function's command
// follows it (the container's args).
var Entrypoint = []string{Watchdog, "--fetch", "--"}

// Packages are the Go packages of the binaries the images hold.
const (
	WatchdogPackage = "nimbus/cmd/nimbus-watchdog"
	NimbusPackage   = "nimbus/cmd/nimbus"
	NATSPackage     = "github.com/nats-io/nats-server/v2"
)

// Runtime writes the runtime image, tagged ref, as an OCI archive to w:
// the root filesystem tar base (nil for none) under a layer holding the
// nimbus-watchdog binary at watchdog.
func Runtime(w io.Writer, ref, watchdog string, base []byte) error {
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

// Single writes an image FROM scratch of one static binary, at path in the
// image and its entrypoint (the nimbus and NATS images).
func Single(w io.Writer, ref, binary, path string) error {
	layer, err := ociimage.Layer(ociimage.File{Path: path, From: binary})
	if err != nil {
		return err
	}
	return ociimage.Write(w, ociimage.Image{Ref: ref, Layers: [][]byte{layer}, Config: ociimage.Config{
		Entrypoint: []string{path}, User: "65532:65532", WorkingDir: "/",
	}})
}

// Build compiles the Go package pkg, static, into dir with the Go
// toolchain on PATH (run inside this module) and returns its path.
func Build(dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	if pkg == NATSPackage {
		out = filepath.Join(dir, "nats-server")
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}
