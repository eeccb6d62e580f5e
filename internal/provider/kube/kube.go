// Package kube is the provider.Provider that runs functions on Kubernetes
// (client-go): a function is a Deployment, in one functions namespace,
// with a headless Service whose EndpointSlices list its ready pods. The
// provider watches those (Deployments, pods, EndpointSlices, through
// informers, never polling) and reports the ready pods' IPs, so the
// gateways route to pods directly, with no kube-proxy hop. Replicas are
// set through the Deployment's scale subresource; a scale-down first takes
// the pods it will remove out of service (the gateway drains them), then
// asks the ReplicaSet to delete exactly those (pod-deletion-cost); a new
// revision is a rolling update (a new pod ready before an old one goes,
// which keeps serving through a preStop pause while the gateways learn
// it is going).
package kube

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"

	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/store"
)

// Options configure a Provider.
type Options struct {
	API *API
	// Namespace is where functions' Deployments go.
	Namespace string
	// Watch is told of every change of a function's State.
	Watch provider.Watcher
	// Drain is called for a pod taken out of service before it is scaled
	// away.
	Drain provider.Drainer
	// Log receives each line a function's pods write (followed from the
	// pods' logs). It must not block.
	Log func(store.LogLine)
	// Where names the cluster, for messages.
	Where string
	// SecretValue reads a secret of a function's namespace, for the
	// Secret its pods mount. Nil: functions with secrets fail to start.
	SecretValue func(ctx context.Context, namespace, name string) ([]byte, error)
	// RuntimeImage and Package run package functions (see Spec).
	RuntimeImage string
	Package      func(digest string) (url, token string)
	// DrainTimeout bounds the wait for a pod's requests (default 15m, the
	// longest function timeout).
	DrainTimeout time.Duration
	Logger       *slog.Logger
}

// Provider keeps functions as Deployments.
type Provider struct {
	o                  Options
	deploys, pods, eps cache.SharedIndexInformer
	queue              workqueue.TypedRateLimitingInterface[string]
	stop               chan struct{}
	wg                 sync.WaitGroup
	stopOnce           sync.Once

	mu       sync.Mutex
	targets  map[string]provider.Target
	reported map[string]reportedState
	leaving  map[string]map[string]bool // function key → pods taken out of service
	shrink   map[string]bool            // a scale-down in progress
	errs     map[string]error           // the last reconcile's error, per function
	// seen and readyAt are when this provider first saw a pod, and saw
	// it ready: its start's duration at a finer grain than Kubernetes's
	// timestamps (seconds).
	seen, readyAt map[string]time.Time
	// follows are the pods' logs being followed, by endpoint id.
	follows map[string]context.CancelFunc
	began   time.Time // what the pods wrote before is not followed
	// secretSums are what each function's Secret was last written with.
	secretSums map[string]string
	// probing are the pods' container runs (endpoint ids) this provider
	// probes itself while Kubernetes has not yet found them ready;
	// answered are those that answered, by pod (see probe).
	probing  map[string]bool
	answered map[string]time.Time
	// lowered marks a target lowered since the last scale-down; lowSince
	// is since when the Deployment has had more replicas than the target
	// without that (see mayShrink).
	lowered  map[string]bool
	lowSince map[string]time.Time
}

type reportedState struct {
	sig   string
	state provider.State
}

// New starts the provider's informers and waits for their caches.
func New(ctx context.Context, o Options) (*Provider, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = function.MaxTimeout
	}
	p := &Provider{o: o, stop: make(chan struct{}),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		targets: map[string]provider.Target{}, reported: map[string]reportedState{},
		leaving: map[string]map[string]bool{}, shrink: map[string]bool{}, errs: map[string]error{},
		seen: map[string]time.Time{}, readyAt: map[string]time.Time{},
		probing: map[string]bool{}, answered: map[string]time.Time{},
		lowered: map[string]bool{}, lowSince: map[string]time.Time{},
		follows: map[string]context.CancelFunc{}, began: time.Now(), secretSums: map[string]string{},
		deploys: informer(o.API.apps, "deployments", o.Namespace, &appsv1.Deployment{}),
		pods:    informer(o.API.core, "pods", o.Namespace, &corev1.Pod{}),
		eps:     informer(o.API.discovery, "endpointslices", o.Namespace, &discoveryv1.EndpointSlice{})}
	h := cache.ResourceEventHandlerFuncs{AddFunc: p.changed, UpdateFunc: func(_, n any) { p.changed(n) }, DeleteFunc: p.deleted}
	for _, inf := range []cache.SharedIndexInformer{p.deploys, p.pods, p.eps} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, err
		}
		go inf.Run(p.stop)
	}
	if !cache.WaitForCacheSync(ctx.Done(), p.deploys.HasSynced, p.pods.HasSynced, p.eps.HasSynced) {
		p.Close(context.Background())
		return nil, fmt.Errorf("kube: the caches of deployments, pods and endpointslices in %q did not fill: %w", o.Namespace, context.Cause(ctx))
	}
	p.wg.Go(p.work)
	return p, nil
}

// spec makes the functions' objects.
func (p *Provider) spec() Spec {
	return Spec{Namespace: p.o.Namespace, RuntimeImage: p.o.RuntimeImage, Package: p.o.Package}
}

// Where says which cluster and namespace the provider runs functions in.
func (p *Provider) Where() string { return p.o.Where + ", namespace " + p.o.Namespace }

// SharesReplicas: a function's Deployment is every gateway's.
func (p *Provider) SharesReplicas() bool { return true }

// Name is the runtime that selects the provider.
func (p *Provider) Name() string { return function.RuntimeKube }

// changed queues the function an object belongs to.
func (p *Provider) changed(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	l := m.GetLabels()
	if l[LabelFunction] == "" || l[LabelNamespace] == "" {
		return
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		now := time.Now()
		p.mu.Lock()
		if _, ok := p.seen[pod.Name]; !ok {
			p.seen[pod.Name] = now
		}
		if _, ok := p.readyAt[pod.Name]; !ok && !readySince(pod).IsZero() {
			p.readyAt[pod.Name] = now
		}
		p.mu.Unlock()
		p.follow(pod)
		p.probe(pod)
	}
	p.queue.Add(function.Key(l[LabelNamespace], l[LabelFunction]))
}

// deleted forgets a deleted pod's times and queues its function.
func (p *Provider) deleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		p.mu.Lock()
		delete(p.seen, pod.Name)
		delete(p.readyAt, pod.Name)
		for id := range p.answered {
			if podName(id) == pod.Name {
				delete(p.answered, id)
			}
		}
		for id, cancel := range p.follows {
			if podName(id) == pod.Name {
				cancel()
				delete(p.follows, id)
			}
		}
		p.mu.Unlock()
	}
	if m, ok := obj.(metav1.Object); ok {
		if l := m.GetLabels(); l[LabelFunction] != "" && l[LabelNamespace] != "" {
			p.queue.Add(function.Key(l[LabelNamespace], l[LabelFunction]))
		}
	}
}

// Probing a starting pod directly, as Knative's activator does: the
// kubelet probes readiness once a period (a second), and its verdict then
// travels through the apiserver and the EndpointSlice controller before a
// gateway learns it, which costs a cold start about a second. The
// provider probes the pod's readiness path itself from the moment its
// container runs, every probeEvery, and routes to it once it answers
// (until Kubernetes says it is ready, after which Kubernetes's word alone
// counts: a pod it finds unready later is not routed to).
const (
	probeEvery = 10 * time.Millisecond
	probeFor   = 60 * time.Second
)

// probe starts probing a pod's running container, once per container run,
// unless Kubernetes already finds it ready.
func (p *Provider) probe(pod *corev1.Pod) {
	if pod.DeletionTimestamp != nil || pod.Status.PodIP == "" || !readySince(pod).IsZero() || len(pod.Spec.Containers) == 0 {
		return
	}
	rp := pod.Spec.Containers[0].ReadinessProbe
	if rp == nil || rp.HTTPGet == nil || len(pod.Status.ContainerStatuses) == 0 || pod.Status.ContainerStatuses[0].State.Running == nil {
		return
	}
	id := endpointID(pod)
	p.mu.Lock()
	// Only a pod Kubernetes never found ready: one it took out of service
	// is not put back by an answer of this provider's.
	if _, was := p.readyAt[pod.Name]; was || p.probing[id] {
		p.mu.Unlock()
		return
	}
	p.probing[id] = true
	p.mu.Unlock()
	l := pod.Labels
	key := function.Key(l[LabelNamespace], l[LabelFunction])
	url := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(Port)) + rp.HTTPGet.Path
	p.wg.Go(func() {
		defer func() {
			p.mu.Lock()
			delete(p.probing, id)
			p.mu.Unlock()
		}()
		// Its own connections, not kept: a probe ends with its answer.
		client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		deadline := time.Now().Add(probeFor)
		for time.Now().Before(deadline) {
			select {
			case <-p.stop:
				return
			case <-time.After(probeEvery):
			}
			if cur, ok := p.podByName(pod.Name); !ok || endpointID(cur) != id || cur.DeletionTimestamp != nil || !readySince(cur).IsZero() {
				return // gone, restarted, or Kubernetes's verdict is in
			}
			resp, err := client.Get(url)
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 400 {
				p.mu.Lock()
				p.answered[id] = time.Now()
				p.mu.Unlock()
				p.queue.Add(key)
				return
			}
		}
	})
}

// podByName is a pod of the functions namespace from the cache.
func (p *Provider) podByName(name string) (*corev1.Pod, bool) {
	obj, ok, err := p.pods.GetIndexer().GetByKey(p.o.Namespace + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	pod, ok := obj.(*corev1.Pod)
	return pod, ok
}

// follow streams a running container's output into Log, once per
// container run (a restarted container is followed anew).
func (p *Provider) follow(pod *corev1.Pod) {
	if p.o.Log == nil || pod.DeletionTimestamp != nil {
		return
	}
	var started time.Time
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == "function" && cs.State.Running != nil {
			started = cs.State.Running.StartedAt.Time
		}
	}
	if started.IsZero() {
		return
	}
	id := endpointID(pod)
	l := pod.Labels
	ns, name := l[LabelNamespace], l[LabelFunction]
	p.mu.Lock()
	if _, ok := p.follows[id]; ok {
		p.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.follows[id] = cancel
	since := started.Add(-time.Second) // Kubernetes's times are whole seconds
	if since.Before(p.began) {
		since = p.began
	}
	p.mu.Unlock()
	p.wg.Go(func() {
		defer cancel()
		go func() {
			select {
			case <-p.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		rc, err := p.o.API.podLogs(ctx, p.o.Namespace, pod.Name, since)
		if err != nil {
			if ctx.Err() == nil {
				p.o.Logger.Warn("kube: following a pod's output failed", "pod", pod.Name, "err", err)
			}
			return
		}
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 0, 64<<10), 256<<10)
		for sc.Scan() {
			at, text, ok := strings.Cut(sc.Text(), " ")
			t, err := time.Parse(time.RFC3339Nano, at)
			if !ok || err != nil {
				t, text = time.Now(), sc.Text()
			}
			// Every gateway follows every pod: the id (the pod's, the
			// kubelet's timestamp, the text) keeps the line once.
			h := sha256.Sum256([]byte(string(pod.UID) + "\x00" + id + "\x00" + at + "\x00" + text))
			p.o.Log(store.LogLine{Time: t, Namespace: ns, Function: name, Instance: id, Stream: "stdout", Text: text, ID: hex.EncodeToString(h[:16])})
		}
	})
}

// Ensure makes t the function's target.
func (p *Provider) Ensure(t provider.Target) {
	key := t.Function.Key()
	p.mu.Lock()
	if prev, ok := p.targets[key]; ok && t.Replicas < prev.Replicas {
		p.lowered[key] = true
	}
	p.targets[key] = t
	p.mu.Unlock()
	p.queue.Add(key)
}

// higherWait is how long replicas above this gateway's target that it did
// not ask to remove (another gateway added them: a call at zero through
// it) stay before this gateway removes them anyway: by then the load they
// came for has reached the decider, whose target includes them if needed.
const higherWait = 10 * time.Second

// mayShrink says whether to scale a function down to its target now: the
// target was lowered since the last scale-down began, or the Deployment
// has had more replicas than the target for higherWait (asking again
// then). A scale-down that begins clears both (scaleDown).
func (p *Provider) mayShrink(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lowered[key] {
		return true
	}
	since, ok := p.lowSince[key]
	if !ok {
		p.lowSince[key] = time.Now()
		p.queue.AddAfter(key, higherWait)
		return false
	}
	return time.Since(since) >= higherWait
}

// State reports a function's replicas.
func (p *Provider) State(namespace, name string) (provider.State, bool) {
	key := function.Key(namespace, name)
	p.mu.Lock()
	t, ok := p.targets[key]
	leaving := cloneSet(p.leaving[key])
	p.mu.Unlock()
	if !ok {
		return provider.State{}, false
	}
	return p.stateOf(key, t, leaving), true
}

// stateOf is a function's State, with what reconciling it last failed on:
// a Deployment the cluster refuses (a label it does not take, a quota)
// fails the requests that wait, as a pod that cannot start does.
func (p *Provider) stateOf(key string, t provider.Target, leaving map[string]bool) provider.State {
	s := stateOf(t, p.observe(t.Function, leaving))
	p.mu.Lock()
	err := p.errs[key]
	p.mu.Unlock()
	if err != nil {
		s.LastError = "start failed: " + err.Error()
		if s.ReadyOf(t.Revision) == 0 {
			s.Failed = err
		}
	}
	return s
}

// Remove deletes a function's Deployment and Service (only if their
// labels name it: another function's objects may bear the name) and waits
// until its pods are gone, or ctx ends.
func (p *Provider) Remove(ctx context.Context, namespace, name string) {
	key := function.Key(namespace, name)
	p.mu.Lock()
	delete(p.targets, key)
	delete(p.reported, key)
	delete(p.errs, key)
	delete(p.lowered, key)
	delete(p.lowSince, key)
	p.mu.Unlock()
	p.deleteObjects(ctx, namespace, name)
	forced := map[string]bool{}
	for ctx.Err() == nil {
		pods := podsOf(p.pods, key)
		if len(pods) == 0 {
			break
		}
		// The ReplicaSet's pods go with it, gracefully; hasten them (a
		// removed function serves nothing more): a grace of 0 shortens
		// a deletion already under way.
		for _, pod := range pods {
			if !forced[pod.Name] {
				forced[pod.Name] = true
				p.o.API.deletePod(ctx, p.o.Namespace, pod.Name, 0)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.mu.Lock()
	delete(p.leaving, key)
	p.mu.Unlock()
}

// deleteObjects deletes the function's Deployment and Service, each only
// if its labels name the function, with the UID read as a precondition.
func (p *Provider) deleteObjects(ctx context.Context, namespace, name string) {
	key, obj := function.Key(namespace, name), ObjectName(namespace, name)
	mine := func(l map[string]string) bool { return l[LabelFunction] == name && l[LabelNamespace] == namespace }
	if d, err := p.o.API.getDeployment(ctx, p.o.Namespace, obj); err == nil && mine(d.Labels) {
		if err := p.o.API.deleteDeployment(ctx, p.o.Namespace, obj, d.UID); err != nil && !apierrors.IsNotFound(err) {
			p.o.Logger.Warn("kube: deleting a function's Deployment failed", "function", key, "err", err)
		}
	} else if err != nil && !apierrors.IsNotFound(err) {
		p.o.Logger.Warn("kube: reading a function's Deployment failed", "function", key, "err", err)
	}
	if sv, err := p.o.API.getService(ctx, p.o.Namespace, obj); err == nil && mine(sv.Labels) {
		if err := p.o.API.deleteService(ctx, p.o.Namespace, obj, sv.UID); err != nil && !apierrors.IsNotFound(err) {
			p.o.Logger.Warn("kube: deleting a function's Service failed", "function", key, "err", err)
		}
	}
	p.mu.Lock()
	delete(p.secretSums, key)
	p.mu.Unlock()
	sec := SecretName(namespace, name)
	if s, err := p.o.API.getSecret(ctx, p.o.Namespace, sec); err == nil && mine(s.Labels) {
		if err := p.o.API.deleteSecret(ctx, p.o.Namespace, sec, s.UID); err != nil && !apierrors.IsNotFound(err) {
			p.o.Logger.Warn("kube: deleting a function's Secret failed", "function", key, "err", err)
		}
	}
}

// Close stops the provider's informers. The Deployments stay: they are
// the cluster's, and other gateways may serve them.
func (p *Provider) Close(context.Context) {
	p.stopOnce.Do(func() {
		close(p.stop)
		p.queue.ShutDown()
	})
	p.wg.Wait()
}

// work reconciles queued functions until the queue shuts down.
func (p *Provider) work() {
	for {
		key, quit := p.queue.Get()
		if quit {
			return
		}
		err := p.reconcile(key)
		p.mu.Lock()
		if _, ok := p.targets[key]; ok {
			p.errs[key] = err
		}
		p.mu.Unlock()
		p.report(key)
		if err != nil {
			p.o.Logger.Warn("kube: reconciling a function failed; retrying", "function", key, "err", err)
			p.queue.AddRateLimited(key)
		} else {
			p.queue.Forget(key)
		}
		p.queue.Done(key)
	}
}

// observe reads a function's pods and EndpointSlices from the caches.
func (p *Provider) observe(fn function.Function, leaving map[string]bool) observed {
	o := observed{pods: podsOf(p.pods, fn.Key()), slices: typed[*discoveryv1.EndpointSlice](p.eps, fn.Key()), leaving: leaving,
		took: map[string]time.Duration{}}
	now := time.Now()
	p.mu.Lock()
	o.answered = map[string]bool{}
	inSlices := readyInSlices(o.slices)
	for _, pod := range o.pods {
		if at, ok := p.answered[endpointID(pod)]; ok {
			switch {
			case inSlices[pod.Name], unreadySince(pod, at):
				// Kubernetes's word counts from now: it lists the pod, or
				// found it unready after it answered.
				delete(p.answered, endpointID(pod))
			default: // answered, and Kubernetes's verdict not through yet
				o.answered[endpointID(pod)] = true
				if _, ok := p.readyAt[pod.Name]; !ok {
					p.readyAt[pod.Name] = at
				}
			}
		}
		seen, ok := p.seen[pod.Name]
		if !ok {
			continue
		}
		// The EndpointSlice may say a pod is ready before the pod's own
		// update reaches this cache: then it is ready by now.
		r, ok := p.readyAt[pod.Name]
		if !ok {
			r = now
		}
		if r.After(seen) {
			o.took[pod.Name] = r.Sub(seen)
		}
	}
	p.mu.Unlock()
	return o
}

// typed lists a function's objects in an informer's cache.
func typed[T any](inf cache.SharedIndexInformer, key string) []T {
	objs, _ := inf.GetIndexer().ByIndex(byFunction, key)
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

func podsOf(inf cache.SharedIndexInformer, key string) []*corev1.Pod {
	return typed[*corev1.Pod](inf, key)
}

// report tells Watch of the function's State when it changed.
func (p *Provider) report(key string) {
	p.mu.Lock()
	t, ok := p.targets[key]
	leaving := cloneSet(p.leaving[key])
	p.mu.Unlock()
	if !ok {
		return
	}
	s := p.stateOf(key, t, leaving)
	sig := signature(s)
	p.mu.Lock()
	if _, still := p.targets[key]; !still || p.reported[key].sig == sig {
		p.mu.Unlock()
		return
	}
	s.Seq = provider.NextSeq()
	prev := p.reported[key].state.Ready
	p.reported[key] = reportedState{sig: sig, state: s}
	p.mu.Unlock()
	if p.o.Watch != nil {
		p.o.Watch(t.Function.Namespace, t.Function.Name, s)
	}
	// A replica that left the list without a scale-down (a rollout's old
	// pod, a deleted one): its requests in flight are waited for — it
	// keeps serving through its preStop pause meanwhile.
	for _, e := range prev {
		if !slices.ContainsFunc(s.Ready, func(x provider.Endpoint) bool { return x.ID == e.ID }) && !leaving[podName(e.ID)] && p.o.Drain != nil {
			p.wg.Go(func() {
				// It serves through its preStop pause, then the watchdog
				// lets requests finish for up to the function's timeout.
				ctx, cancel := context.WithTimeout(context.Background(), preStopSeconds*time.Second+time.Duration(t.Function.Timeout))
				defer cancel()
				p.o.Drain(ctx, t.Function.Namespace, t.Function.Name, e.ID)
			})
		}
	}
}

// podName is the pod of an endpoint id.
func podName(id string) string {
	if i := strings.LastIndexByte(id, '~'); i >= 0 {
		return id[:i]
	}
	return id
}

// signature is what of a State, when it changes, is worth a report.
func signature(s provider.State) string {
	b, _ := json.Marshal(struct {
		Rev       uint64
		Desired   int
		Starting  int
		Ready     []string
		Failed    string
		LastError string
	}{s.Revision, s.Desired, s.Starting, endpointKeys(s.Ready), errString(s.Failed), s.LastError})
	return string(b)
}

func endpointKeys(es []provider.Endpoint) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID + "@" + e.Addr + "#" + strconv.FormatUint(e.Revision, 10)
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// reconcile brings a function's Deployment and Service to its target.
func (p *Provider) reconcile(key string) error {
	p.mu.Lock()
	t, ok := p.targets[key]
	p.mu.Unlock()
	if !ok {
		return nil
	}
	fn := t.Function
	name := ObjectName(fn.Namespace, fn.Name)
	obj, exists, err := p.deploys.GetIndexer().GetByKey(p.o.Namespace + "/" + name)
	if err != nil {
		return err
	}
	if !exists {
		if err := p.syncSecret(context.Background(), fn); err != nil {
			return err
		}
		if err := p.create(context.Background(), t); err != nil {
			return err
		}
		p.mu.Lock()
		_, still := p.targets[key]
		p.mu.Unlock()
		if !still {
			// Removed while this was being created: undo it.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p.deleteObjects(ctx, fn.Namespace, fn.Name)
		}
		return nil
	}
	cur := obj.(*appsv1.Deployment)
	if cur.Labels[LabelFunction] != fn.Name || cur.Labels[LabelNamespace] != fn.Namespace {
		return fmt.Errorf("a Deployment named %q in namespace %q is not function %s's: rename or remove it", name, p.o.Namespace, key)
	}
	ctx := context.Background()
	if cur.Annotations[AnnotationRevision] != strconv.FormatUint(t.Revision, 10) {
		if err := p.syncSecret(ctx, fn); err != nil {
			return err
		}
		if err := p.update(ctx, t); err != nil {
			return err
		}
	}
	have := int32(1)
	if cur.Spec.Replicas != nil {
		have = *cur.Spec.Replicas
	}
	switch want := int32(t.Replicas); {
	case want > have:
		// New pods read the secrets' values of now, as the other
		// runtimes' new replicas do.
		if len(fn.Secrets) > 0 {
			if err := p.syncSecret(ctx, fn); err != nil {
				return err
			}
		}
		return p.scale(ctx, name, want)
	case want < have && !t.GrowOnly: // the decider's gateway removes replicas
		if p.mayShrink(key) {
			p.scaleDown(key, t)
		}
	default:
		p.mu.Lock()
		delete(p.lowSince, key)
		p.mu.Unlock()
	}
	return nil
}

// syncSecret writes the Secret that holds fn's secrets (when their values
// changed since it last did), or deletes one fn no longer needs.
func (p *Provider) syncSecret(ctx context.Context, fn function.Function) error {
	key, name := fn.Key(), SecretName(fn.Namespace, fn.Name)
	mine := func(l map[string]string) bool {
		return l[LabelFunction] == fn.Name && l[LabelNamespace] == fn.Namespace
	}
	if len(fn.Secrets) == 0 {
		p.mu.Lock()
		delete(p.secretSums, key)
		p.mu.Unlock()
		if s, err := p.o.API.getSecret(ctx, p.o.Namespace, name); err == nil && mine(s.Labels) {
			if err := p.o.API.deleteSecret(ctx, p.o.Namespace, name, s.UID); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting the Secret of %s: %w", key, err)
			}
		}
		return nil
	}
	if p.o.SecretValue == nil {
		return fmt.Errorf("function %s has secrets, and this nimbus gives the kube runtime none", key)
	}
	values := make(map[string][]byte, len(fn.Secrets))
	h := sha256.New()
	for _, s := range fn.Secrets {
		v, err := p.o.SecretValue(ctx, fn.Namespace, s)
		if err != nil {
			return fmt.Errorf("secret %q of %s: %w", s, key, err)
		}
		values[s] = v
		fmt.Fprintf(h, "%d:%s=%d:", len(s), s, len(v))
		h.Write(v)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	p.mu.Lock()
	same := p.secretSums[key] == sum
	p.mu.Unlock()
	if same {
		return nil
	}
	want := p.spec().Secret(fn, values)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := p.o.API.getSecret(ctx, p.o.Namespace, name)
		if apierrors.IsNotFound(err) {
			err := p.o.API.createSecret(ctx, want)
			if apierrors.IsAlreadyExists(err) {
				// Another gateway made it meanwhile: read it and update.
				return apierrors.NewConflict(corev1.Resource("secrets"), name, err)
			}
			return err
		} else if err != nil {
			return err
		}
		if !mine(cur.Labels) {
			return fmt.Errorf("a Secret named %q in namespace %q is not function %s's: rename or remove it", name, p.o.Namespace, key)
		}
		cur.Labels, cur.Data, cur.StringData, cur.Type = want.Labels, want.Data, nil, want.Type
		return p.o.API.updateSecret(ctx, cur)
	})
	if err != nil {
		return fmt.Errorf("writing the Secret of %s: %w", key, err)
	}
	p.mu.Lock()
	p.secretSums[key] = sum
	p.mu.Unlock()
	return nil
}

// create makes a function's Service and Deployment.
func (p *Provider) create(ctx context.Context, t provider.Target) error {
	d, err := p.spec().Deployment(t.Function, t.Revision, t.Replicas)
	if err != nil {
		return err
	}
	if err := p.o.API.createService(ctx, p.spec().Service(t.Function)); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the Service of %s: %w", t.Function.Key(), err)
	}
	if err := p.o.API.createDeployment(ctx, d); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the Deployment of %s: %w", t.Function.Key(), err)
	}
	return nil
}

// update rolls a function's Deployment to the target's revision, keeping
// its replica count (scaling is the scale subresource's).
func (p *Provider) update(ctx context.Context, t provider.Target) error {
	want, err := p.spec().Deployment(t.Function, t.Revision, 0)
	if err != nil {
		return err
	}
	// A Service lost meanwhile (deleted by hand) comes back with the update.
	if err := p.o.API.createService(ctx, p.spec().Service(t.Function)); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the Service of %s: %w", t.Function.Key(), err)
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		next, err := p.o.API.getDeployment(ctx, p.o.Namespace, want.Name)
		if err != nil {
			return err
		}
		next.Labels, next.Annotations = want.Labels, want.Annotations
		next.Spec.Template, next.Spec.Strategy = want.Spec.Template, want.Spec.Strategy
		return p.o.API.updateDeployment(ctx, next)
	})
}

// scale sets a Deployment's replicas through its scale subresource.
func (p *Provider) scale(ctx context.Context, name string, n int32) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := p.o.API.getScale(ctx, p.o.Namespace, name)
		if err != nil {
			return err
		}
		if sc.Spec.Replicas == n {
			return nil
		}
		return p.o.API.updateScale(ctx, p.o.Namespace, name, &autoscalingv1.Scale{ObjectMeta: sc.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: n}})
	})
}

// scaleDown takes the pods beyond the target out of service, drains them,
// marks them the ReplicaSet's first to delete and then scales down, in the
// background (draining takes as long as their requests); one at a time
// per function. Victims that do not go (the target rose meanwhile, the
// ReplicaSet chose others) are put back in service within shrinkWait.
func (p *Provider) scaleDown(key string, t provider.Target) {
	p.mu.Lock()
	if p.shrink[key] {
		p.mu.Unlock()
		return // the one in progress requeues the function when done
	}
	p.shrink[key] = true
	// This scale-down answers the lowered target, and any wait above it.
	delete(p.lowered, key)
	delete(p.lowSince, key)
	p.mu.Unlock()
	live := slices.DeleteFunc(podsOf(p.pods, key), func(pod *corev1.Pod) bool {
		return pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
	})
	// Not ready first, then older revisions, then the newest.
	rev := strconv.FormatUint(t.Revision, 10)
	slices.SortStableFunc(live, func(a, b *corev1.Pod) int {
		ra, rb := readySince(a).IsZero(), readySince(b).IsZero()
		if ra != rb {
			if ra {
				return -1
			}
			return 1
		}
		va, vb := a.Labels[LabelRevision] == rev, b.Labels[LabelRevision] == rev
		if va != vb {
			if !va {
				return -1
			}
			return 1
		}
		return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
	})
	victims := live[:max(0, len(live)-t.Replicas)]
	p.mu.Lock()
	set := p.leaving[key]
	if set == nil {
		set = map[string]bool{}
		p.leaving[key] = set
	}
	for _, v := range victims {
		set[v.Name] = true
	}
	p.mu.Unlock()
	if len(victims) > 0 {
		p.report(key) // out of the gateways' lists before anything else
	}
	name := ObjectName(t.Function.Namespace, t.Function.Name)
	p.wg.Go(func() {
		defer func() {
			p.mu.Lock()
			delete(p.shrink, key)
			for _, v := range victims {
				delete(p.leaving[key], v.Name)
			}
			p.mu.Unlock()
			p.queue.Add(key)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), p.o.DrainTimeout)
		defer cancel()
		go func() { // Close ends the wait
			select {
			case <-p.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		var wg sync.WaitGroup
		for _, v := range victims {
			if p.o.Drain != nil {
				wg.Go(func() { p.o.Drain(ctx, t.Function.Namespace, t.Function.Name, endpointID(v)) })
			}
		}
		wg.Wait()
		p.mu.Lock()
		cur, ok := p.targets[key]
		p.mu.Unlock()
		if !ok || cur.Replicas > len(live)-len(victims) {
			// Removed, or asked for more meanwhile: the victims serve
			// again (the deferred requeue reconciles the rest).
			return
		}
		cost := []byte(`{"metadata":{"annotations":{"` + AnnotationDeletionCost + `":"-1000"}}}`)
		for _, v := range victims {
			if err := p.o.API.patchPod(ctx, p.o.Namespace, v.Name, cost); err != nil && !apierrors.IsNotFound(err) {
				p.o.Logger.Warn("kube: marking a pod to scale away failed", "pod", v.Name, "err", err)
			}
		}
		// The ReplicaSet controller ranks pods by the mark as its cache
		// has them: scale once this provider's cache (as far behind the
		// API as the controller's) shows every mark.
		for i := 0; i < 50 && ctx.Err() == nil && !p.marked(victims); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if err := p.scale(ctx, name, int32(cur.Replicas)); err != nil {
			p.o.Logger.Warn("kube: scaling down failed", "function", key, "err", err)
		}
		// The victims stay out of service until they are gone, or until
		// it is clear the ReplicaSet took others: then they serve again,
		// unmarked, so that a later scale-down does not take them undrained.
		deadline := time.Now().Add(shrinkWait)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			if p.gone(victims) == len(victims) {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		unmark := []byte(`{"metadata":{"annotations":{"` + AnnotationDeletionCost + `":null}}}`)
		for _, v := range victims {
			p.o.API.patchPod(context.Background(), p.o.Namespace, v.Name, unmark)
		}
	})
}

// shrinkWait is how long a scaled-down pod may take to start terminating
// before it is put back in service.
const shrinkWait = 30 * time.Second

// marked reports whether the cache shows every pod marked to go first.
func (p *Provider) marked(pods []*corev1.Pod) bool {
	for _, v := range pods {
		obj, exists, _ := p.pods.GetIndexer().GetByKey(p.o.Namespace + "/" + v.Name)
		if exists && obj.(*corev1.Pod).Annotations[AnnotationDeletionCost] == "" {
			return false
		}
	}
	return true
}

// gone counts the pods that are deleted or terminating.
func (p *Provider) gone(pods []*corev1.Pod) int {
	n := 0
	for _, v := range pods {
		obj, exists, _ := p.pods.GetIndexer().GetByKey(p.o.Namespace + "/" + v.Name)
		if !exists || obj.(*corev1.Pod).DeletionTimestamp != nil {
			n++
		}
	}
	return n
}

func cloneSet(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var _ provider.Provider = (*Provider)(nil)
