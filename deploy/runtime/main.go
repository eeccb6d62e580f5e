// Command runtime builds nimbus's runtime image, the one the kube runtime
// runs packages in (see docs/kubernetes.md), as an OCI archive, with no
// registry and no image builder:
//
//	go run ./deploy/runtime -o nimbus-runtime.tar
//	ctr -n k8s.io images import nimbus-runtime.tar   # or: docker load -i nimbus-runtime.tar
//
// It is FROM scratch unless -base names a root filesystem tar to put it
// on (for functions that need an interpreter; docs/kubernetes.md says how
// to make a Debian one with debootstrap).
package main

import (
	"flag"
	"fmt"
	"os"

	"nimbus/internal/runtimeimage"
)

func main() {
	out := flag.String("o", "nimbus-runtime.tar", "where to write the image (an OCI archive)")
	tag := flag.String("tag", "localhost/nimbus-runtime:dev", "the image's reference (name:tag); give it to nimbus up --kube-runtime-image")
	base := flag.String("base", "", "a root filesystem tar (or .tar.gz) to build on; none: FROM scratch")
	flag.Parse()
	if err := build(*out, *tag, *base); err != nil {
		fmt.Fprintln(os.Stderr, "runtime:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, *tag)
}

func build(out, tag, basePath string) error {
	dir, err := os.MkdirTemp("", "nimbus-runtime-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	wd, err := runtimeimage.BuildWatchdog(dir)
	if err != nil {
		return err
	}
	var base []byte
	if basePath != "" {
		if base, err = os.ReadFile(basePath); err != nil {
			return err
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := runtimeimage.Build(f, tag, wd, base); err != nil {
		return err
	}
	return f.Close()
}
