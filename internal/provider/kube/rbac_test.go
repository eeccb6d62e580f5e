package kube

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestRoleGrantsWhatNimbusChecks: the Role deploy/kubernetes ships grants
// every verb CheckAccess asks for, and nothing more.
func TestRoleGrantsWhatNimbusChecks(t *testing.T) {
	b, err := os.ReadFile("../../../deploy/kubernetes/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	granted := map[string][]string{} // group/resource → verbs
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc struct {
			Kind  string
			Rules []struct {
				APIGroups []string `yaml:"apiGroups"`
				Resources []string `yaml:"resources"`
				Verbs     []string `yaml:"verbs"`
			}
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if doc.Kind != "Role" {
			continue
		}
		for _, r := range doc.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					granted[g+"/"+res] = append(granted[g+"/"+res], r.Verbs...)
				}
			}
		}
	}
	want := map[string][]string{}
	for _, p := range Permissions {
		res := p.Resource
		if p.Subresource != "" {
			res += "/" + p.Subresource
		}
		want[p.Group+"/"+res] = append(want[p.Group+"/"+res], p.Verbs...)
	}
	for k, verbs := range want {
		for _, v := range verbs {
			if !slices.Contains(granted[k], v) {
				t.Errorf("the Role does not grant %s on %s", v, k)
			}
		}
	}
	for k, verbs := range granted {
		for _, v := range verbs {
			if !slices.Contains(want[k], v) {
				t.Errorf("the Role grants %s on %s, which nimbus does not use", v, k)
			}
		}
	}
}
