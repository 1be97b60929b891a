package aio

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// On real nodes kuryr-daemon and kuryr-controller are pods, and they are
// restarted the two ways a cluster restarts them: a crash (the container's
// process SIGKILLed; the kubelet starts the container again in the same
// pod) or a deletion (the pod deleted gracefully; the DaemonSet or the
// Deployment makes a new one).

// restartPodTimeout bounds a restart: the kubelet's first restart of a
// crashed container is immediate, later ones back off (10 s, 20 s, 40 s, …);
// with leader election (not in the all-in-one overlay) a new controller
// would also wait for a killed leader's lease to expire (15 s).
const restartPodTimeout = 2 * time.Minute

// restartDaemonPod restarts node n's kuryr-daemon pod and waits until the
// daemon serves on the node's CNI socket again.
func (e *Env) restartDaemonPod(ctx context.Context, n *Node, crash bool) error {
	pod, err := e.DaemonPod(ctx, n)
	if err != nil {
		return err
	}
	if err := e.restartPod(ctx, pod, "daemon", "/usr/bin/kuryr-daemon", crash, "app="+daemonSetName); err != nil {
		return err
	}
	return e.waitDaemonPod(ctx, n)
}

// restartControllerPod restarts kuryr-controller's pod and waits until the
// Deployment's pod is ready again.
func (e *Env) restartControllerPod(ctx context.Context, crash bool) error {
	pods, err := e.Clientset.CoreV1().Pods(daemonNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + controllerName})
	if err != nil {
		return fmt.Errorf("list kuryr-controller pods: %w", err)
	}
	if len(pods.Items) != 1 {
		return fmt.Errorf("%d kuryr-controller pods, want 1 to restart", len(pods.Items))
	}
	if err := e.restartPod(ctx, &pods.Items[0], "controller", "/usr/bin/kuryr-controller", crash, "app="+controllerName); err != nil {
		return err
	}
	return e.waitController(ctx)
}

// restartPod restarts container (running bin) of pod: with crash it kills
// the container's process and waits until the kubelet has started the
// container again and it is ready; else it deletes the pod and waits for a
// ready replacement matching selector on the same node.
func (e *Env) restartPod(ctx context.Context, pod *corev1.Pod, container, bin string, crash bool, selector string) error {
	ctx, cancel := context.WithTimeout(ctx, restartPodTimeout)
	defer cancel()
	start := time.Now()
	if !crash {
		if err := e.Clientset.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		if err := e.waitReplacement(ctx, pod, selector); err != nil {
			return err
		}
		e.logf("pod %s/%s deleted; its replacement ready in %.1f s", pod.Namespace, pod.Name, time.Since(start).Seconds())
		return nil
	}
	before := -1
	for _, st := range pod.Status.ContainerStatuses {
		if st.Name == container {
			before = int(st.RestartCount)
		}
	}
	if before < 0 {
		return fmt.Errorf("pod %s/%s has no status of container %s", pod.Namespace, pod.Name, container)
	}
	n := e.Node(pod.Spec.NodeName)
	if n == nil || n.real == nil {
		return fmt.Errorf("pod %s/%s is on %q, not a real node of the environment", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	pid, err := n.real.containerPID(pod.UID, bin)
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s (pid %d) of pod %s/%s: %w", bin, pid, pod.Namespace, pod.Name, err)
	}
	var last string
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := e.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, st := range p.Status.ContainerStatuses {
			if st.Name == container {
				last = fmt.Sprintf("restarts %d, ready %v", st.RestartCount, st.Ready)
				return int(st.RestartCount) > before && st.Ready, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("container %s of pod %s/%s not restarted after its process was killed (%s): %w", container, pod.Namespace, pod.Name, last, err)
	}
	e.logf("%s of pod %s/%s killed (pid %d); restarted by the kubelet and ready in %.1f s", container, pod.Namespace, pod.Name, pid, time.Since(start).Seconds())
	return nil
}

// waitReplacement waits until a pod matching selector other than old runs
// ready on old's node.
func (e *Env) waitReplacement(ctx context.Context, old *corev1.Pod, selector string) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		pods, err := e.Clientset.CoreV1().Pods(old.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, p := range pods.Items {
			if p.UID == old.UID {
				last = "the old pod is still there"
				return false, nil
			}
		}
		for _, p := range pods.Items {
			if c := PodCondition(&p, corev1.PodReady); c != nil && c.Status == corev1.ConditionTrue {
				return true, nil
			}
			last = fmt.Sprintf("pod %s is %s, not ready", p.Name, p.Status.Phase)
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("no ready replacement of pod %s/%s (%s): %w", old.Namespace, old.Name, last, err)
	}
	return nil
}

// containerPID is the process of the pod with uid whose program is bin
// (its command line's first word).
func (r *realNode) containerPID(uid types.UID, bin string) (int, error) {
	pids := r.cgroup.podPIDs(string(uid))
	for _, pid := range pids {
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil {
			continue
		}
		if argv0, _, _ := bytes.Cut(cmdline, []byte{0}); string(argv0) == bin {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process running %s among the pod's %v", bin, pids)
}
