// Command images builds nimbus's container images from this module as OCI
// archives, with no registry and no image builder (see docs/kubernetes.md):
//
//	go run ./deploy/images -image runtime -o nimbus-runtime.tar   # packages run in it (kube)
//	go run ./deploy/images -image nimbus -o nimbus.tar            # deploy/kubernetes's gateways
//	go run ./deploy/images -image nats -o nats.tar                # its NATS members (nats-server)
//	ctr -n k8s.io images import nimbus-runtime.tar                # or: docker load -i ...
//
// The runtime image is FROM scratch unless -base names a root filesystem
// tar to put it on (for functions that need an interpreter).
package main

import (
	"flag"
	"fmt"
	"os"

	"nimbus/internal/images"
)

func main() {
	which := flag.String("image", "runtime", "runtime, nimbus or nats")
	out := flag.String("o", "", "where to write the image, an OCI archive (default: nimbus-IMAGE.tar)")
	tag := flag.String("tag", "", "the image's reference, name:tag (default: the one deploy/kubernetes names, e.g. localhost/nimbus-runtime:dev)")
	base := flag.String("base", "", "runtime only: a root filesystem tar (or .tar.gz) to build on; none: FROM scratch")
	flag.Parse()
	if *out == "" {
		*out = "nimbus-" + *which + ".tar"
	}
	if *tag == "" {
		*tag = map[string]string{"runtime": "localhost/nimbus-runtime:dev", "nimbus": "localhost/nimbus:dev", "nats": "localhost/nats-server:dev"}[*which]
	}
	if err := build(*which, *out, *tag, *base); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, *tag)
}

func build(which, out, tag, basePath string) error {
	pkg := map[string]string{"runtime": images.WatchdogPackage, "nimbus": images.NimbusPackage, "nats": images.NATSPackage}[which]
	if pkg == "" {
		return fmt.Errorf("-image %q: use runtime, nimbus or nats", which)
	}
	if basePath != "" && which != "runtime" {
		return fmt.Errorf("-base is for -image runtime")
	}
	dir, err := os.MkdirTemp("", "nimbus-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := images.Build(dir, pkg)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	switch which {
	case "runtime":
		var base []byte
		if basePath != "" {
			if base, err = os.ReadFile(basePath); err != nil {
				return err
			}
		}
		err = images.Runtime(f, tag, bin, base)
	case "nimbus":
		err = images.Single(f, tag, bin, "/nimbus")
	case "nats":
		err = images.Single(f, tag, bin, "/nats-server")
	}
	if err != nil {
		return err
	}
	return f.Close()
}
