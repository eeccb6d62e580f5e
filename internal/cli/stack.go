package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"go.yaml.in/yaml/v3"

	"nimbus/internal/function"
	"nimbus/internal/openfaas"
)

// stackFile is OpenFaaS's stack.yml (faas-cli stack/schema.go), as far as
// deploying reads it. Unknown fields are errors that name the field.
type stackFile struct {
	Version   string                   `yaml:"version"`
	Provider  stackProvider            `yaml:"provider"`
	Functions map[string]stackFunction `yaml:"functions"`
	// Accepted for compatibility; they concern faas-cli's own builds.
	Configuration yaml.Node `yaml:"configuration"`
}

type stackProvider struct {
	Name    string `yaml:"name"`
	Gateway string `yaml:"gateway"`
	Network string `yaml:"network"`
}

type stackFunction struct {
	Lang                   string            `yaml:"lang"`
	Handler                string            `yaml:"handler"`
	Image                  string            `yaml:"image"`
	FProcess               string            `yaml:"fprocess"`
	Environment            map[string]string `yaml:"environment"`
	EnvironmentFile        []string          `yaml:"environment_file"`
	Secrets                []string          `yaml:"secrets"`
	Labels                 map[string]string `yaml:"labels"`
	Annotations            map[string]string `yaml:"annotations"`
	Limits                 *stackResources   `yaml:"limits"`
	Requests               *stackResources   `yaml:"requests"`
	Constraints            []string          `yaml:"constraints"`
	ReadOnlyRootFilesystem bool              `yaml:"readonly_root_filesystem"`
	Namespace              string            `yaml:"namespace"`
	BuildOptions           []string          `yaml:"build_options"`
	BuildArgs              map[string]string `yaml:"build_args"`
	SkipBuild              bool              `yaml:"skip_build"`
	Platforms              string            `yaml:"platforms"`
}

type stackResources struct {
	Memory string `yaml:"memory"`
	CPU    string `yaml:"cpu"`
}

// readStack reads a stack file and returns its provider gateway and the nimbus
// specs of its functions, sorted by name.
func readStack(path string) (string, []function.Function, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	var st stackFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&st); err != nil {
		return "", nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(st.Functions) == 0 {
		return "", nil, fmt.Errorf("%s has no functions", path)
	}
	names := make([]string, 0, len(st.Functions))
	for n := range st.Functions {
		names = append(names, n)
	}
	sort.Strings(names)
	var fns []function.Function
	for _, name := range names {
		sf := st.Functions[name]
		env := map[string]string{}
		for _, f := range sf.EnvironmentFile {
			if err := readEnvFile(filepath.Join(filepath.Dir(path), f), env); err != nil {
				return "", nil, fmt.Errorf("%s: function %s: %v", path, name, err)
			}
		}
		for k, v := range sf.Environment {
			env[k] = v
		}
		dep := openfaas.FunctionDeployment{
			Service: name, Image: sf.Image, Namespace: sf.Namespace, EnvProcess: sf.FProcess, EnvVars: env,
			Secrets: sf.Secrets, ReadOnlyRootFilesystem: sf.ReadOnlyRootFilesystem,
		}
		if sf.Labels != nil {
			dep.Labels = &sf.Labels
		}
		if sf.Annotations != nil {
			dep.Annotations = &sf.Annotations
		}
		if sf.Limits != nil {
			dep.Limits = &openfaas.FunctionResources{Memory: sf.Limits.Memory, CPU: sf.Limits.CPU}
		}
		if sf.Requests != nil {
			dep.Requests = &openfaas.FunctionResources{Memory: sf.Requests.Memory, CPU: sf.Requests.CPU}
		}
		fn, err := openfaas.ToFunction(dep)
		if err != nil {
			return "", nil, fmt.Errorf("%s: function %s: %v", path, name, err)
		}
		if len(fn.Env) == 0 {
			fn.Env = nil
		}
		check := fn.WithDefaults()
		if err := check.Validate(); err != nil {
			return "", nil, fmt.Errorf("%s: function %s: %v", path, name, err)
		}
		fns = append(fns, fn)
	}
	return st.Provider.Gateway, fns, nil
}

// readEnvFile merges an environment_file (YAML with an "environment" map).
func readEnvFile(path string, into map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var f struct {
		Environment map[string]string `yaml:"environment"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	for k, v := range f.Environment {
		into[k] = v
	}
	return nil
}
