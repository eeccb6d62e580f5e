// Package ociimage writes container images as OCI image layout archives
// (the tar `ctr images import` and `docker load` read), from files on this
// machine, with no registry and no image builder: how nimbus's runtime
// image and the tests' images are made.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// File is one file of a layer: its path in the image, its mode and where
// its bytes are on this machine.
type File struct {
	Path string
	From string
	Mode int64 // default 0755
}

// Layer is an uncompressed tar of files, in path order, with fixed times,
// so that the same files always make the same layer (and digest).
func Layer(files ...File) ([]byte, error) {
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	files = append([]File(nil), files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	dirs := map[string]bool{}
	for _, f := range files {
		name := strings.TrimPrefix(f.Path, "/")
		// Parent directories first (a tar need not list them, but
		// some importers want them).
		for i := 0; i < len(name); i++ {
			if name[i] == '/' && !dirs[name[:i]] {
				dirs[name[:i]] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name[:i] + "/", Mode: 0o755, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
					return nil, err
				}
			}
		}
		b, err := os.ReadFile(f.From)
		if err != nil {
			return nil, err
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Digest is the hex sha256 of b.
func Digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Config is what an image runs.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
}

// Image is an image to write: its reference (name:tag), its layers
// (uncompressed tars, lowest first; a layer read from a .tar.gz is
// decompressed by Write) and its configuration.
type Image struct {
	Ref    string
	Layers [][]byte
	Config Config
}

// Write writes img as an OCI image layout tar to w.
func Write(w io.Writer, img Image) error {
	colon := strings.LastIndexByte(img.Ref, ':')
	if colon < 0 || strings.Contains(img.Ref[colon:], "/") {
		return fmt.Errorf("image reference %q has no tag: give name:tag", img.Ref)
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Platform    map[string]string `json:"platform,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	blobs := map[string][]byte{}
	put := func(mt string, b []byte) desc {
		d := Digest(b)
		blobs[d] = b
		return desc{MediaType: mt, Digest: "sha256:" + d, Size: len(b)}
	}
	var layers []desc
	var diffIDs []string
	for _, l := range img.Layers {
		if len(l) > 2 && l[0] == 0x1f && l[1] == 0x8b {
			zr, err := gzip.NewReader(bytes.NewReader(l))
			if err != nil {
				return err
			}
			if l, err = io.ReadAll(zr); err != nil {
				return fmt.Errorf("decompressing a layer: %w", err)
			}
		}
		d := put("application/vnd.oci.image.layer.v1.tar", l)
		layers = append(layers, d)
		diffIDs = append(diffIDs, d.Digest)
	}
	cfg := map[string]any{"Entrypoint": img.Config.Entrypoint}
	if img.Config.Cmd != nil {
		cfg["Cmd"] = img.Config.Cmd
	}
	if img.Config.Env != nil {
		cfg["Env"] = img.Config.Env
	}
	if img.Config.WorkingDir != "" {
		cfg["WorkingDir"] = img.Config.WorkingDir
	}
	if img.Config.User != "" {
		cfg["User"] = img.Config.User
	}
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux", "config": cfg,
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return err
	}
	c := put("application/vnd.oci.image.config.v1+json", config)
	manifest, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c, "layers": layers})
	if err != nil {
		return err
	}
	m := put("application/vnd.oci.image.manifest.v1+json", manifest)
	m.Platform = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
	m.Annotations = map[string]string{"io.containerd.image.name": img.Ref, "org.opencontainers.image.ref.name": img.Ref[colon+1:]}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []desc{m}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	names := make([]string, 0, len(blobs))
	for d := range blobs {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		if err := add("blobs/sha256/"+d, blobs[d]); err != nil {
			return err
		}
	}
	return tw.Close()
}
