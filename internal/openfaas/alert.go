package openfaas

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"nimbus/internal/function"
)

// The AlertManager webhook payload OpenFaaS accepts (spec.openapi.yml,
// PrometheusAlert), as much of it as scaling reads.
type alertPayload struct {
	Receiver string  `json:"receiver"`
	Status   string  `json:"status"`
	Alerts   []alert `json:"alerts"`
}

type alert struct {
	Status string            `json:"status"`
	Labels map[string]string `json:"labels"`
}

const (
	labelFactor   = "com.openfaas.scale.factor"
	defaultFactor = 10
)

// alertScale handles AlertManager's webhook: a firing alert for a function
// raises its replicas by a step of ceil(max × factor / 100), up to max; a
// resolved one brings them back to the function's own minimum (its
// com.openfaas.scale.min label). That is OpenFaaS's CalculateReplicas; the
// count is set as /system/scale-function sets it, with no new revision.
func (h *Handler) alertScale(w http.ResponseWriter, r *http.Request) {
	var p alertPayload
	if err := decode(r, &p); err != nil {
		badBody(w, err)
		return
	}
	if p.Status == "" || p.Alerts == nil {
		http.Error(w, "status and alerts are required (an AlertManager webhook payload)", http.StatusBadRequest)
		return
	}
	var errs []string
	for _, a := range p.Alerts {
		target := a.Labels["function_name"]
		if target == "" {
			continue
		}
		name, ns := target, function.DefaultNamespace
		if i := strings.LastIndexByte(target, '.'); i > 0 {
			name, ns = target[:i], target[i+1:]
		}
		if err := h.scaleForAlert(r, ns, name, a.Status == "firing"); err != nil {
			errs = append(errs, target+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		http.Error(w, strings.Join(errs, "; "), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) scaleForAlert(r *http.Request, ns, name string, firing bool) error {
	rec, err := h.opts.Store.Get(r.Context(), ns, name)
	if err != nil {
		return err
	}
	if h.opts.Scale == nil || h.opts.Replicas == nil {
		return errors.New("scaling is not available")
	}
	fn := rec.Function
	base, top, factor := labelInt(fn.Labels, labelMin, defaultMin), labelInt(fn.Labels, labelMax, defaultMax), labelInt(fn.Labels, labelFactor, defaultFactor)
	if fn.Labels[labelZero] == "true" {
		base = 0
	}
	top = min(top, fn.Scale.Max)
	current, ok := h.opts.Replicas(ns, name)
	if !ok {
		return errors.New("function is not served yet")
	}
	if _, ok := h.opts.Scale(ns, name, NextReplicas(firing, current, base, top, factor)); !ok {
		return errors.New("function is not served yet")
	}
	return nil
}

// NextReplicas is OpenFaaS's scaling step, a pure function: firing adds
// ceil(max × factor / 100) to current, capped at max; resolved returns base.
func NextReplicas(firing bool, current, base, top, factor int) int {
	if !firing {
		return base
	}
	step := int(math.Ceil(float64(top) * float64(factor) / 100))
	return min(top, current+max(step, 1))
}

func labelInt(labels map[string]string, key string, def int) int {
	if v, err := strconv.Atoi(labels[key]); err == nil && v >= 0 {
		return v
	}
	return def
}
