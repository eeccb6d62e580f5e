package kube

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"nimbus/internal/provider"
)

// observed is what the provider's caches hold of one function.
type observed struct {
	pods   []*corev1.Pod
	slices []*discoveryv1.EndpointSlice
	// leaving are pods taken out of service to be scaled away.
	leaving map[string]bool
	// took is how long pods took to become ready, as the provider saw it.
	took map[string]time.Duration
	// answered are container runs (endpoint ids) Kubernetes has not found
	// ready yet that answered the provider's own readiness probe.
	answered map[string]bool
}

// failingReasons are the container states that mean a pod will not become ready
// by waiting: Kubernetes retries them with backoff of its own.
var failingReasons = map[string]bool{
	"CrashLoopBackOff": true, "ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true,
	"InvalidImageName": true, "CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// stateOf is a function's State from what the caches hold: the ready
// endpoints (from EndpointSlices, a pod's IP on Port, the target
// revision's first), what is starting, and why the target's pods fail.
func stateOf(t provider.Target, o observed) provider.State {
	s := provider.State{Revision: t.Revision, Desired: t.Replicas}
	pods := map[string]*corev1.Pod{}
	for _, p := range o.pods {
		pods[p.Name] = p
	}
	seen := map[string]bool{}
	for _, sl := range o.slices {
		for _, e := range sl.Endpoints {
			if e.Conditions.Ready == nil || !*e.Conditions.Ready || e.TargetRef == nil || e.TargetRef.Kind != "Pod" || len(e.Addresses) == 0 {
				continue
			}
			p := pods[e.TargetRef.Name]
			if p == nil || seen[p.Name] || o.leaving[p.Name] || p.DeletionTimestamp != nil {
				continue
			}
			seen[p.Name] = true
			rev, _ := strconv.ParseUint(p.Labels[LabelRevision], 10, 64)
			ep := provider.Endpoint{ID: endpointID(p), Revision: rev, Addr: net.JoinHostPort(e.Addresses[0], strconv.Itoa(Port))}
			if p.Status.StartTime != nil {
				ep.Started = p.Status.StartTime.Time
			}
			if d, ok := o.took[p.Name]; ok {
				ep.StartTook = d
			} else if at := readySince(p); !at.IsZero() {
				ep.StartTook = at.Sub(p.CreationTimestamp.Time) // Kubernetes's seconds
			}
			s.Ready = append(s.Ready, ep)
		}
	}
	// Pods that answered the provider's own probe before Kubernetes's
	// verdict reached it.
	for _, p := range o.pods {
		if seen[p.Name] || o.leaving[p.Name] || p.DeletionTimestamp != nil || p.Status.PodIP == "" || !o.answered[endpointID(p)] {
			continue
		}
		seen[p.Name] = true
		rev, _ := strconv.ParseUint(p.Labels[LabelRevision], 10, 64)
		ep := provider.Endpoint{ID: endpointID(p), Revision: rev, Addr: net.JoinHostPort(p.Status.PodIP, strconv.Itoa(Port))}
		if p.Status.StartTime != nil {
			ep.Started = p.Status.StartTime.Time
		}
		if d, ok := o.took[p.Name]; ok {
			ep.StartTook = d
		}
		s.Ready = append(s.Ready, ep)
	}
	slices.SortStableFunc(s.Ready, func(a, b provider.Endpoint) int {
		switch {
		case a.Revision == b.Revision:
			return 0
		case a.Revision == t.Revision:
			return -1
		case b.Revision == t.Revision:
			return 1
		}
		return 0
	})
	var why, reason string
	var whyAt time.Time
	for _, p := range o.pods {
		rev, _ := strconv.ParseUint(p.Labels[LabelRevision], 10, 64)
		if rev != t.Revision || p.DeletionTimestamp != nil || seen[p.Name] || o.leaving[p.Name] || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		if _, _, failing := podFailure(p); failing {
			continue // not starting: Kubernetes retries it on its own backoff
		}
		s.Starting++
	}
	failed := false
	for _, p := range o.pods {
		rev, _ := strconv.ParseUint(p.Labels[LabelRevision], 10, 64)
		if rev != t.Revision {
			continue
		}
		if r, at, f := podFailure(p); r != "" && (why == "" || at.After(whyAt)) {
			why, whyAt, failed = r, at, f
			reason = publicReason(p)
		}
	}
	if why != "" {
		s.LastError, s.LastErrorAt = why, whyAt
		if failed && s.ReadyOf(t.Revision) == 0 {
			s.Failed, s.Reason = errors.New(why), reason
		}
	}
	return s
}

// endpointID names a pod's container run: a container Kubernetes
// restarted in place is a new replica (its connections are gone).
func endpointID(p *corev1.Pod) string {
	restarts := int32(0)
	for _, cs := range p.Status.ContainerStatuses {
		restarts += cs.RestartCount
	}
	return p.Name + "~" + strconv.Itoa(int(restarts))
}

// readySince is when a pod last became ready; zero if it is not.
func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// unreadySince says whether Kubernetes found the pod unready after t.
func unreadySince(p *corev1.Pod, t time.Time) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse {
			return c.LastTransitionTime.Time.After(t)
		}
	}
	return false
}

// readyInSlices are the pods the EndpointSlices list as ready.
func readyInSlices(slices []*discoveryv1.EndpointSlice) map[string]bool {
	ready := map[string]bool{}
	for _, sl := range slices {
		for _, e := range sl.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready && e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				ready[e.TargetRef.Name] = true
			}
		}
	}
	return ready
}

// podFailure says why a pod does not start, or what last ended its
// container, as Kubernetes reports it (the container's waiting reason and
// message, its last exit, an unschedulable pod's condition), and since
// when; failing when it will not become ready by waiting. "" if nothing
// went wrong.
func podFailure(p *corev1.Pod) (msg string, at time.Time, failing bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return "start failed: pod " + p.Name + " cannot be scheduled: " + c.Message, c.LastTransitionTime.Time, true
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		t := cs.LastTerminationState.Terminated
		w := cs.State.Waiting
		if w != nil && failingReasons[w.Reason] {
			msg = "start failed: pod " + p.Name + ": " + w.Reason
			if w.Message != "" {
				msg += ": " + w.Message
			}
			at = p.CreationTimestamp.Time
			if t != nil {
				msg += lastExit(t)
				at = t.FinishedAt.Time
			}
			return msg, at, true
		}
		if t != nil {
			return "pod " + p.Name + ": the container ended" + lastExit(t), t.FinishedAt.Time, false
		}
	}
	return "", time.Time{}, false
}

func lastExit(t *corev1.ContainerStateTerminated) string {
	s := fmt.Sprintf(" (last exit: code %d, %s", t.ExitCode, t.Reason)
	if t.Message != "" {
		s += ": " + t.Message
	}
	return s + ")"
}

// publicReason is Kubernetes's reason a pod's container waits (and its
// message), or why the pod is not scheduled: what callers may be told.
func publicReason(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return "Unschedulable: " + c.Message
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && failingReasons[w.Reason] {
			if w.Reason == "CrashLoopBackOff" {
				return w.Reason // its message quotes the function's exit; that stays in its logs
			}
			if w.Message != "" {
				return w.Reason + ": " + w.Message
			}
			return w.Reason
		}
	}
	return ""
}
