package aio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// Timing is when things happened to one pod, as the kubelet stand-in saw
// them.
type Timing struct {
	// Created is when the pod was created (the environment's CreatePod call,
	// else the first watch event of a cluster-wide informer).
	Created time.Time
	// AddStart and AddDone bracket the successful CNI ADD.
	AddStart, AddDone time.Time
	// Running is when the pod's status was set to Running.
	Running time.Time
	// Attempts counts CNI ADDs, failed ones included.
	Attempts int
	// LastAddError is the error of the last failed CNI ADD (the plugin's
	// *types.Error, with its code), nil when none failed.
	LastAddError error
}

// NetworkReady is the time from pod creation to the CNI ADD's return.
func (t Timing) NetworkReady() time.Duration {
	if t.Created.IsZero() || t.AddDone.IsZero() {
		return 0
	}
	return t.AddDone.Sub(t.Created)
}

// Kubelet is the kubelet stand-in of one node: for each pod bound to the
// node it makes a network namespace, runs the CNI ADD through libcni as
// containerd does, and marks the pod Running with its IPs; on deletion it
// runs DEL, removes the namespace and deletes the pod with grace 0.
type Kubelet struct {
	env      *Env
	node     *Node
	cni      *libcni.CNIConfig
	confPath string
	lister   corelisters.PodLister
	queue    workqueue.TypedRateLimitingInterface[string]

	// stop ends the stand-in and removes its pods' namespaces, once.
	stop func() error

	mu        sync.Mutex
	sandboxes map[string]*sandbox // by namespace/name
	// failed are the sandboxes of a failed ADD whose DEL failed too, by
	// namespace/name: as a kubelet stops such a sandbox again until the
	// runtime's teardown succeeds, their DEL is retried before anything
	// else is done for the pod, and their namespaces stay until it
	// succeeds.
	failed  map[string][]*sandbox
	timings map[types.UID]*Timing
	wg      sync.WaitGroup
}

type sandbox struct {
	uid   types.UID
	id    string // the sandbox (infra container) ID: CNI_CONTAINERID
	netns string
}

// kuryrNetConf is the network configuration containerd would find in
// /etc/cni/net.d with kuryr-dpdk as the primary CNI. It names no socket:
// the shim takes the node's from the node-local file next to it
// (cniapi.NodeConfigName), which each node's CNI binary directory has.
const kuryrNetConf = `{"cniVersion":"1.1.0","name":"kuryr","type":"kuryr-cni",` +
	`"capabilities":{"io.kubernetes.cri.pod-annotations":true}}`

// podAnnotationsCap is the capability through which containerd gives the
// plugin every pod annotation.
const podAnnotationsCap = "io.kubernetes.cri.pod-annotations"

// netConfList is the CNI network configuration list of node n.
func (e *Env) netConfList(n *Node) ([]byte, error) {
	conf := e.opts.CNIConfig
	if conf == nil {
		conf = []byte(kuryrNetConf)
	}
	conf = []byte(strings.ReplaceAll(string(conf), "@SOCKET@", n.Socket))
	return asConfList(conf)
}

// nodeCNIBin makes node n's own CNI binary directory: the plugins of the
// environment's options (the kuryr-cni shim, or every plugin of
// CNIBinDir) and the node-local file naming n's daemon socket.
func (e *Env) nodeCNIBin(n *Node) (string, error) {
	binDir, names := e.opts.CNIBinDir, []string(nil)
	if binDir == "" {
		binDir = e.binDir
	}
	if e.opts.CNIConfig == nil {
		names = []string{"kuryr-cni"}
	}
	dir := filepath.Join(n.Dir, "cni-bin")
	if err := testenv.NodeCNIBin(binDir, dir, n.Socket, names...); err != nil {
		return "", fmt.Errorf("CNI binaries of %s: %w", n.Name, err)
	}
	return dir, nil
}

func (e *Env) startKubelet(n *Node) error {
	confDir := filepath.Join(n.Dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	conf, err := e.netConfList(n)
	if err != nil {
		return err
	}
	k := &Kubelet{env: e, node: n, confPath: filepath.Join(confDir, "10-kuryr.conflist"),
		sandboxes: map[string]*sandbox{}, failed: map[string][]*sandbox{}, timings: map[types.UID]*Timing{}}
	if err := os.WriteFile(k.confPath, conf, 0o644); err != nil {
		return err
	}
	binDir, err := e.nodeCNIBin(n)
	if err != nil {
		return err
	}
	k.cni = libcni.NewCNIConfigWithCacheDir([]string{binDir}, filepath.Join(n.Dir, "cni-cache"), nil)
	k.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "kubelet-" + n.Name})

	f := informers.NewSharedInformerFactoryWithOptions(e.Clientset, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", n.Name).String()
	}))
	inf := f.Core().V1().Pods()
	k.lister = inf.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			k.queue.Add(key)
		}
	}
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }, DeleteFunc: enqueue,
	})
	ctx, cancel := context.WithCancel(e.ctx)
	f.Start(ctx.Done())
	for range podWorkers {
		k.wg.Add(1)
		go k.work(ctx)
	}
	n.Kubelet = k
	var once sync.Once
	k.stop = func() (err error) {
		once.Do(func() {
			cancel()
			k.queue.ShutDown()
			k.wg.Wait()
			f.Shutdown()
			err = k.removeAllNetNS()
		})
		return err
	}
	e.defer_(k.stop)
	return nil
}

// podWorkers is how many pods of a node the stand-in sets up at once: the
// kubelet's default maxPods. The kubelet syncs each pod in its own worker,
// and a CNI ADD waits (for the pod's interfaces) without holding the
// others back; the stand-in's 8 workers made the 9th pod of a node wait
// for a whole ADD of another before its own started (docs/benchmarks.md).
const podWorkers = 110

func (k *Kubelet) work(ctx context.Context) {
	defer k.wg.Done()
	for {
		key, quit := k.queue.Get()
		if quit {
			return
		}
		if err := k.sync(ctx, key); err != nil && ctx.Err() == nil {
			k.env.logf("kubelet stand-in of %s: pod %s: %v (retrying)", k.node.Name, key, err)
			k.queue.AddRateLimited(key)
		} else {
			k.queue.Forget(key)
		}
		k.queue.Done(key)
	}
}

// Timing returns what the stand-in recorded for the pod uid.
func (k *Kubelet) Timing(uid types.UID) (Timing, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.timings[uid]
	if !ok {
		return Timing{}, false
	}
	return *t, true
}

// NetNS returns the path of the pod's network namespace, "" when it has none.
func (k *Kubelet) NetNS(namespace, name string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if sb, ok := k.sandboxes[namespace+"/"+name]; ok {
		return sb.netns
	}
	return ""
}

func (k *Kubelet) timing(pod *corev1.Pod) *Timing {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.timings[pod.UID]
	if !ok {
		t = &Timing{Created: pod.CreationTimestamp.Time}
		if at, ok := k.env.created.get(pod.UID); ok {
			t.Created = at
		}
		k.timings[pod.UID] = t
	}
	return t
}

func (k *Kubelet) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	if err := k.retryFailedDel(ctx, key); err != nil {
		return err
	}
	pod, err := k.lister.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return k.killSandbox(ctx, key, "")
	}
	if err != nil {
		return err
	}
	if err := k.killSandbox(ctx, key, pod.UID); err != nil { // a sandbox of an older pod of that name
		return err
	}
	if pod.DeletionTimestamp != nil {
		if err := k.killSandbox(ctx, key, ""); err != nil {
			return err
		}
		if ptr.Deref(pod.DeletionGracePeriodSeconds, 1) == 0 {
			return nil
		}
		err := k.env.Clientset.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete pod %s with grace 0: %w", key, err)
		}
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	k.mu.Lock()
	_, running := k.sandboxes[key]
	k.mu.Unlock()
	if running {
		return nil
	}
	if pod.Spec.HostNetwork {
		return k.markRunning(ctx, pod, "", []string{k.node.IP()})
	}
	return k.runSandbox(ctx, key, pod)
}

// runSandbox makes the pod's namespace and runs CNI ADD; on failure it runs
// DEL and removes the namespace, as containerd does, and records an Event.
func (k *Kubelet) runSandbox(ctx context.Context, key string, pod *corev1.Pod) error {
	t := k.timing(pod)
	sb := &sandbox{uid: pod.UID, id: randomHex(32)}
	var err error
	sb.netns, err = createNetNS(k.env.nsName("pod-" + string(pod.UID)[:8] + "-" + sb.id[:4]))
	if err != nil {
		return err
	}
	list, rt, err := k.cniCall(pod, sb)
	if err != nil {
		_ = removeNetNS(sb.netns)
		return err
	}
	start := time.Now()
	addCtx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	res, err := k.cni.AddNetworkList(addCtx, list, rt)
	cancel()
	done := time.Now()
	k.mu.Lock()
	t.Attempts++
	if err != nil {
		t.LastAddError = err
	}
	k.mu.Unlock()
	if err != nil {
		delCtx, cancel := context.WithTimeout(ctx, time.Minute)
		delErr := k.cni.DelNetworkList(delCtx, list, rt)
		cancel()
		if delErr != nil {
			k.mu.Lock()
			k.failed[key] = append(k.failed[key], sb)
			k.mu.Unlock()
			delErr = fmt.Errorf("CNI DEL of the failed sandbox %s (retried before the pod's next ADD): %w", sb.id[:12], delErr)
		} else {
			_ = removeNetNS(sb.netns)
		}
		k.event(ctx, pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", fmt.Sprintf(
			"Failed to create pod sandbox: plugin type=%q name=%q failed (add): %v", list.Plugins[0].Network.Type, list.Name, err))
		return errors.Join(fmt.Errorf("CNI ADD for pod %s: %w", key, err), delErr)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("CNI ADD result of pod %s: %w", key, err)
	}
	k.mu.Lock()
	k.sandboxes[key] = sb
	t.AddStart, t.AddDone = start, done
	k.mu.Unlock()
	return k.markRunning(ctx, pod, sb.id, podIPs(r))
}

// cniCall is the configuration and runtime arguments containerd would pass.
func (k *Kubelet) cniCall(pod *corev1.Pod, sb *sandbox) (*libcni.NetworkConfigList, *libcni.RuntimeConf, error) {
	list, err := libcni.ConfListFromFile(k.confPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load CNI config %s: %w", k.confPath, err)
	}
	ann := map[string]string{}
	for a, v := range pod.Annotations {
		ann[a] = v
	}
	rt := &libcni.RuntimeConf{
		ContainerID: sb.id, NetNS: sb.netns, IfName: "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", pod.Namespace}, {"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", sb.id}, {"K8S_POD_UID", string(pod.UID)},
		},
		CapabilityArgs: map[string]any{podAnnotationsCap: ann},
	}
	return list, rt, nil
}

// asConfList turns a single plugin's network configuration into a list of
// one, as containerd does with a .conf file: name and cniVersion move up to
// the list, the rest stays the plugin's. A list is returned as it is.
func asConfList(conf []byte) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		return nil, fmt.Errorf("CNI network configuration: %w", err)
	}
	if _, ok := m["plugins"]; ok {
		return conf, nil
	}
	list := map[string]any{"cniVersion": m["cniVersion"], "name": m["name"], "plugins": []any{m}}
	delete(m, "name")
	delete(m, "cniVersion")
	return json.Marshal(list)
}

// podIPs are the addresses of eth0 in the result (all of them when no
// interface is named eth0).
func podIPs(r *types100.Result) []string {
	eth0 := -1
	for i, ifc := range r.Interfaces {
		if ifc.Name == "eth0" && ifc.Sandbox != "" {
			eth0 = i
		}
	}
	var out []string
	for _, ip := range r.IPs {
		if eth0 < 0 || (ip.Interface != nil && *ip.Interface == eth0) {
			out = append(out, ip.Address.IP.String())
		}
	}
	return out
}

// retryFailedDel runs DEL again for the sandboxes of key whose ADD and DEL
// failed (Kubelet.failed), oldest first, removing each one's namespace once
// its DEL succeeds; the first that fails again is the error (the key is
// retried with backoff).
func (k *Kubelet) retryFailedDel(ctx context.Context, key string) error {
	for {
		k.mu.Lock()
		if len(k.failed[key]) == 0 {
			delete(k.failed, key)
			k.mu.Unlock()
			return nil
		}
		sb := k.failed[key][0]
		k.mu.Unlock()
		if err := k.delSandbox(ctx, key, sb); err != nil {
			return fmt.Errorf("the failed sandbox's teardown, again: %w", err)
		}
		k.mu.Lock()
		k.failed[key] = k.failed[key][1:]
		k.mu.Unlock()
	}
}

// killSandbox runs DEL for the sandbox of key (unless it belongs to pod
// keepUID) and removes its namespace.
func (k *Kubelet) killSandbox(ctx context.Context, key string, keepUID types.UID) error {
	k.mu.Lock()
	sb, ok := k.sandboxes[key]
	k.mu.Unlock()
	if !ok || (keepUID != "" && sb.uid == keepUID) {
		return nil
	}
	if err := k.delSandbox(ctx, key, sb); err != nil {
		return err
	}
	k.mu.Lock()
	delete(k.sandboxes, key)
	k.mu.Unlock()
	return nil
}

// delSandbox runs DEL for sandbox sb of the pod of key and then removes
// its namespace.
func (k *Kubelet) delSandbox(ctx context.Context, key string, sb *sandbox) error {
	namespace, name, _ := cache.SplitMetaNamespaceKey(key)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: sb.uid}}
	list, rt, err := k.cniCall(pod, sb)
	if err != nil {
		return err
	}
	delCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := k.cni.DelNetworkList(delCtx, list, rt); err != nil {
		return fmt.Errorf("CNI DEL for pod %s (sandbox %s): %w", key, sb.id[:12], err)
	}
	return removeNetNS(sb.netns)
}

// StopSandbox tears the running sandbox of pod namespace/name down on the
// node alone, as a runtime does when a sandbox dies (or `crictl stopp`):
// CNI DEL, namespace removed, whether or not the API server answers. Like
// the kubelet, the stand-in then starts a new sandbox for the pod (a new
// ADD) from what it knows of the pod, retried with backoff until it
// succeeds. It returns the stopped sandbox's ID (CNI_CONTAINERID).
func (k *Kubelet) StopSandbox(ctx context.Context, namespace, name string) (string, error) {
	key := namespace + "/" + name
	k.mu.Lock()
	sb, ok := k.sandboxes[key]
	k.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("pod %s has no sandbox on %s", key, k.node.Name)
	}
	if err := k.killSandbox(ctx, key, ""); err != nil {
		return sb.id, err
	}
	k.queue.Add(key)
	return sb.id, nil
}

func (k *Kubelet) removeAllNetNS() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var errs []error
	for key, sb := range k.sandboxes {
		errs = append(errs, removeNetNS(sb.netns))
		delete(k.sandboxes, key)
	}
	for key, sbs := range k.failed {
		for _, sb := range sbs {
			errs = append(errs, removeNetNS(sb.netns))
		}
		delete(k.failed, key)
	}
	return errors.Join(errs...)
}

// markRunning sets the pod's status as a kubelet does once its containers run.
func (k *Kubelet) markRunning(ctx context.Context, pod *corev1.Pod, sandboxID string, ips []string) error {
	pods := k.env.Clientset.CoreV1().Pods(pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return fmt.Errorf("pod %s/%s was replaced", pod.Namespace, pod.Name)
		}
		now := metav1.Now()
		st := &cur.Status
		st.Phase = corev1.PodRunning
		st.HostIP = k.node.IP()
		st.HostIPs = []corev1.HostIP{{IP: k.node.IP()}}
		st.PodIP, st.PodIPs = "", nil
		for i, ip := range ips {
			if i == 0 {
				st.PodIP = ip
			}
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
		if st.StartTime == nil {
			st.StartTime = &now
		}
		for _, c := range []corev1.PodConditionType{"PodReadyToStartContainers", corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			setPodCondition(st, c, now)
		}
		st.ContainerStatuses = nil
		for _, c := range cur.Spec.Containers {
			st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr.To(true),
				ContainerID: "kuryr-aio://" + sandboxID,
				State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("mark pod %s/%s Running: %w", pod.Namespace, pod.Name, err)
	}
	t := k.timing(pod)
	k.mu.Lock()
	t.Running = time.Now()
	k.mu.Unlock()
	return nil
}

func setPodCondition(st *corev1.PodStatus, t corev1.PodConditionType, now metav1.Time) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != corev1.ConditionTrue {
				st.Conditions[i].Status, st.Conditions[i].LastTransitionTime = corev1.ConditionTrue, now
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
}

// event records an Event on the pod from the kubelet, as kubectl describe
// shows them.
func (k *Kubelet) event(ctx context.Context, pod *corev1.Pod, typ, reason, msg string) {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion},
		Type: typ, Reason: reason, Message: msg, Count: 1, FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: "kubelet", Host: k.node.Name}, ReportingController: "kubelet", ReportingInstance: k.node.Name,
	}
	_, _ = k.env.Clientset.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{})
}

// Timing returns the kubelet stand-in's record of pod uid on any node.
func (e *Env) Timing(uid types.UID) (Timing, bool) {
	for _, n := range e.Nodes {
		if n.Kubelet == nil {
			continue
		}
		if t, ok := n.Kubelet.Timing(uid); ok {
			return t, true
		}
	}
	return Timing{}, false
}

var _ cnitypes.Result = (*types100.Result)(nil)
