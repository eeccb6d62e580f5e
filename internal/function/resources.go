package function

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	imageRE   = regexp.MustCompile(`^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$`)
	metaKeyRE = regexp.MustCompile(`^([a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$`)
)

func validateImage(image string) error {
	if image == "" {
		return fieldErr("image", "is required for runtime %q: a container image such as \"ghcr.io/you/fn:1.0\"", RuntimeDocker)
	}
	if len(image) > 512 || !imageRE.MatchString(image) {
		return fieldErr("image", "%q is not an image reference: write it as NAME[:TAG] or NAME@sha256:DIGEST", image)
	}
	return nil
}

func validateMeta(field string, m map[string]string) error {
	if len(m) > 64 {
		return fieldErr(field, "has %d entries: at most 64 are allowed", len(m))
	}
	for k, v := range m {
		if len(k) > 253 || !metaKeyRE.MatchString(k) {
			return fieldErr(field+"."+k, "is not a valid key: use letters, digits, '-', '_', '.' and an optional 'prefix/'")
		}
		if len(v) > 4096 {
			return fieldErr(field+"."+k, "is longer than 4096 bytes")
		}
		if i := controlAt(v, false); i >= 0 {
			return fieldErr(field+"."+k, "has a control character (%q at byte %d): remove it", v[i], i)
		}
	}
	return nil
}

// MinContainerMemory is the smallest memory limit a container engine
// takes (Docker refuses less than 6 MB).
const MinContainerMemory = 6 << 20

// ContainerMemory is the memory limit a container gets for r: the limit as
// given, or MinContainerMemory when it is below it (raised reports that).
// 0 means no limit. r must be valid.
func (r Resources) ContainerMemory() (bytes int64, raised bool) {
	if r.Memory == "" {
		return 0, false
	}
	b, _ := ParseMemory(r.Memory)
	if b > 0 && b < MinContainerMemory {
		return MinContainerMemory, true
	}
	return b, false
}

func (r Resources) validate(field string) error {
	if r.Memory != "" {
		if _, err := ParseMemory(r.Memory); err != nil {
			return fieldErr(field+".memory", "%v", err)
		}
	}
	if r.CPU != "" {
		if _, err := ParseCPU(r.CPU); err != nil {
			return fieldErr(field+".cpu", "%v", err)
		}
	}
	return nil
}

var memUnits = map[string]int64{
	"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
}

// ParseMemory reads a Kubernetes memory quantity ("128Mi", "1G", "1048576")
// as bytes.
func ParseMemory(q string) (int64, error) {
	i := strings.IndexFunc(q, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := q, ""
	if i >= 0 {
		num, unit = q[:i], q[i:]
	}
	mult, ok := memUnits[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a memory quantity: write it as 128Mi, 1Gi or a number of bytes", q)
	}
	b := int64(v * float64(mult))
	if b < 1 || v*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("%q is out of range: give at least 1 byte, at most 4Ei", q)
	}
	return b, nil
}

// ParseCPU reads a CPU quantity ("500m", "0.5", "2") as nano-CPUs.
func ParseCPU(q string) (int64, error) {
	var v float64
	var err error
	if strings.HasSuffix(q, "m") {
		var m float64
		m, err = strconv.ParseFloat(strings.TrimSuffix(q, "m"), 64)
		v = m / 1000
	} else {
		v, err = strconv.ParseFloat(q, 64)
	}
	if err != nil || v <= 0 || v > 1024 {
		return 0, fmt.Errorf("%q is not a CPU quantity: write it as 500m or 0.5 (of one CPU)", q)
	}
	return int64(v * 1e9), nil
}
