package kube

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"nimbus/internal/function"
	"nimbus/internal/provider"
)

func pod(name, rev string, ready bool, restarts int32) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelRevision: rev},
		CreationTimestamp: metav1.NewTime(time.Unix(100, 0))}}
	p.Status.StartTime = &metav1.Time{Time: time.Unix(101, 0)}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: restarts}}
	if ready {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Unix(102, 0))}}
	}
	return p
}

func slice(eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{Endpoints: eps}
}

func ep(pod, ip string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod}}
}

func TestStateOf(t *testing.T) {
	tg := provider.Target{Function: function.Function{Name: "f", Namespace: "default"}, Revision: 2, Replicas: 3}
	o := observed{
		pods: []*corev1.Pod{pod("old", "1", true, 0), pod("new", "2", true, 1), pod("leaving", "2", true, 0), pod("coming", "2", false, 0)},
		slices: []*discoveryv1.EndpointSlice{
			slice(ep("old", "10.0.0.1", true), ep("new", "10.0.0.2", true), ep("coming", "10.0.0.4", false)),
			slice(ep("leaving", "10.0.0.3", true), ep("new", "10.0.0.2", true)), // a pod may be in two slices for a moment
		},
		leaving: map[string]bool{"leaving": true},
	}
	s := stateOf(tg, o)
	if len(s.Ready) != 2 || s.Ready[0].ID != "new~1" || s.Ready[0].Addr != "10.0.0.2:8080" || s.Ready[1].ID != "old~0" || s.Ready[1].Revision != 1 {
		t.Fatalf("ready: %+v (want the target revision's first, the leaving and unready out, each once)", s.Ready)
	}
	if s.Ready[0].StartTook != 2*time.Second || !s.Ready[0].Started.Equal(time.Unix(101, 0)) {
		t.Fatalf("start times: %+v", s.Ready[0])
	}
	if s.Starting != 1 || s.Failed != nil || s.Desired != 3 {
		t.Fatalf("state: %+v", s)
	}

	// A pod that cannot pull its image: the reason, and a failure while
	// nothing of the revision is ready.
	bad := pod("bad", "3", false, 0)
	bad.Status.ContainerStatuses[0].State.Waiting = &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: `pull access denied for "localhost/nope:v1"`}
	tg.Revision = 3
	s = stateOf(tg, observed{pods: []*corev1.Pod{bad}})
	if s.Failed == nil || s.Starting != 0 || !strings.Contains(s.LastError, "ErrImagePull") || !strings.Contains(s.LastError, "localhost/nope:v1") {
		t.Fatalf("image missing: %+v", s)
	}
	// A container that crashed and runs again: said, not a failure.
	again := pod("again", "3", true, 1)
	again.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", FinishedAt: metav1.NewTime(time.Unix(200, 0))}
	s = stateOf(tg, observed{pods: []*corev1.Pod{again}, slices: []*discoveryv1.EndpointSlice{slice(ep("again", "10.0.0.5", true))}})
	if s.Failed != nil || !strings.Contains(s.LastError, "code 2") || len(s.Ready) != 1 {
		t.Fatalf("a restarted container: %+v", s)
	}
}

// A pod that answered the provider's own probe is ready before Kubernetes
// says so; not when it is leaving, going, has no IP, or its container
// restarted since it answered.
func TestStateOfProbed(t *testing.T) {
	tg := provider.Target{Function: function.Function{Name: "f", Namespace: "default"}, Revision: 2, Replicas: 4}
	withIP := func(p *corev1.Pod, ip string) *corev1.Pod { p.Status.PodIP = ip; return p }
	going := withIP(pod("going", "2", false, 0), "10.0.0.3")
	going.DeletionTimestamp = &metav1.Time{Time: time.Unix(300, 0)}
	o := observed{
		pods: []*corev1.Pod{withIP(pod("fresh", "2", false, 0), "10.0.0.1"), withIP(pod("leaving", "2", false, 0), "10.0.0.2"), going,
			pod("noip", "2", false, 0), withIP(pod("restarted", "2", false, 1), "10.0.0.5")},
		leaving:  map[string]bool{"leaving": true},
		answered: map[string]bool{"fresh~0": true, "leaving~0": true, "going~0": true, "noip~0": true, "restarted~0": true},
	}
	s := stateOf(tg, o)
	if len(s.Ready) != 1 || s.Ready[0].ID != "fresh~0" || s.Ready[0].Addr != "10.0.0.1:8080" || s.Ready[0].Revision != 2 {
		t.Fatalf("ready: %+v, want the fresh pod that answered alone", s.Ready)
	}
	if s.Starting != 2 { // noip and restarted
		t.Fatalf("starting %d, want 2", s.Starting)
	}
}

// When Kubernetes's verdict is through: a pod the slices list ready, or
// one found unready after it answered the provider's probe.
func TestVerdict(t *testing.T) {
	if got := readyInSlices([]*discoveryv1.EndpointSlice{slice(ep("a", "10.0.0.1", true), ep("b", "10.0.0.2", false))}); !got["a"] || got["b"] {
		t.Fatalf("ready in slices: %v", got)
	}
	answered := time.Unix(150, 500)
	p := pod("p", "1", false, 0)
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(time.Unix(150, 0))}}
	if unreadySince(p, answered) {
		t.Fatal("a pod unready since before it answered (its start) counts as found unready")
	}
	p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Unix(160, 0))
	if !unreadySince(p, answered) {
		t.Fatal("a pod found unready after it answered is not")
	}
}
