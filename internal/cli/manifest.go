package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"nimbus/internal/function"
)

// ManifestFile is the file `nimbus deploy` reads from a function's directory.
const ManifestFile = "nimbus.yaml"

// manifest is nimbus.yaml: a function spec plus how to build it.
type manifest struct {
	Name       string            `yaml:"name"`
	Namespace  string            `yaml:"namespace"`
	Runtime    string            `yaml:"runtime"`
	Protocol   string            `yaml:"protocol"`
	Command    command           `yaml:"command"`
	Build      string            `yaml:"build"`
	Env        map[string]string `yaml:"env"`
	Timeout    function.Duration `yaml:"timeout"`
	Scale      function.Scale    `yaml:"scale"`
	HealthPath string            `yaml:"healthPath"`
	// Container functions (runtime: docker).
	Image                  string             `yaml:"image"`
	Limits                 function.Resources `yaml:"limits"`
	Requests               function.Resources `yaml:"requests"`
	ReadOnlyRootFilesystem bool               `yaml:"readOnlyRootFilesystem"`
	Labels                 map[string]string  `yaml:"labels"`
	Annotations            map[string]string  `yaml:"annotations"`
	Secrets                []string           `yaml:"secrets"`
	Async                  function.Async     `yaml:"async"`
}

// command is written as a string ("python3 main.py", split on spaces) or a list.
type command []string

func (c *command) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*c = strings.Fields(n.Value)
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*c = l
		return nil
	}
	return fmt.Errorf("line %d: command must be a string or a list of strings", n.Line)
}

// readManifest reads and checks DIR/nimbus.yaml. Unknown fields are errors
// that name the field.
func readManifest(dir string) (manifest, function.Function, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return manifest{}, function.Function{}, fmt.Errorf("%s not found: run 'nimbus new NAME' to make a function, or point deploy at its directory", path)
	}
	if err != nil {
		return manifest{}, function.Function{}, err
	}
	var m manifest
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return m, function.Function{}, fmt.Errorf("%s: %v", path, err)
	}
	fn := function.Function{
		Name: m.Name, Namespace: m.Namespace, Runtime: m.Runtime, Protocol: m.Protocol,
		Command: m.Command, Env: m.Env, Timeout: m.Timeout, Scale: m.Scale, HealthPath: m.HealthPath,
		Image: m.Image, Limits: m.Limits, Requests: m.Requests, ReadOnlyRootFilesystem: m.ReadOnlyRootFilesystem,
		Labels: m.Labels, Annotations: m.Annotations, Secrets: m.Secrets, Async: m.Async,
	}.WithDefaults()
	// The package digest is known only after packing; check the rest now.
	check := fn
	if fn.Image == "" {
		check.Package = "sha256:" + strings.Repeat("0", 64)
	}
	if err := check.Validate(); err != nil {
		return m, fn, fmt.Errorf("%s: %v", path, err)
	}
	// A runtime left out is the server's choice (nimbus up --provider).
	fn.Runtime = m.Runtime
	return m, fn, nil
}
