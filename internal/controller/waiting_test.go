package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/networks"
)

// TestWaitingFor: a plan that stops at a missing or invalid NAD waits for
// that NAD (and no other); a plan that fails for another reason, or
// succeeds, waits for none. The errors come from the real planner.
func TestWaitingFor(t *testing.T) {
	t.Parallel()
	const subnet = "9f3c8a52-4c1e-4a83-9d68-0c3a1b2c3d4e"
	nads := map[string]networks.NAD{
		"ns/good":    {Config: fmt.Sprintf(`{"cniVersion":"1.0.0","name":"good","type":"kuryr-cni","driver":"nested-vlan","subnetId":%q}`, subnet)},
		"ns/sriov":   {Config: fmt.Sprintf(`{"cniVersion":"1.0.0","name":"sriov","type":"kuryr-cni","driver":"nested-sriov","subnetId":%q}`, subnet)},
		"ns/garbage": {Config: `{"type":`},
	}
	cases := map[string]struct {
		annotation string
		want       []string
	}{
		"planned":                       {"good", nil},
		"missing after a good one":      {"good,nope", []string{"ns/nope"}},
		"invalid driver":                {"good,sriov", []string{"ns/sriov"}},
		"malformed config":              {"garbage", []string{"ns/garbage"}},
		"malformed annotation":          {`[{"name":"good"`, nil},
		"interface name taken twice":    {"good@net5,good@net5", nil},
		"missing in another namespace":  {"other/nope", nil},
		"first failure only is awaited": {"nope,sriov", []string{"ns/nope"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns",
				Annotations: map[string]string{v1alpha1.NetworksAnnotation: c.annotation}}}
			var read []string
			get := func(_ context.Context, namespace, name string) (networks.NAD, error) {
				read = append(read, namespace+"/"+name)
				nad, ok := nads[namespace+"/"+name]
				if !ok {
					return networks.NAD{}, fmt.Errorf("NetworkAttachmentDefinition %s/%s: %w", namespace, name, networks.ErrNADNotFound)
				}
				return nad, nil
			}
			_, err := networks.Plan(context.Background(), pod, get, networks.Defaults{Driver: v1alpha1.DriverNestedVLAN})
			if got := waitingFor(err, read); !slices.Equal(got, c.want) {
				t.Fatalf("waitingFor(%v, %v) = %v, want %v", err, read, got, c.want)
			}
		})
	}
}

// TestFixedNADWakesThePodWaitingForIt: a pod whose NAD is invalid records
// it in status.waitingForNetworks, a pod whose NAD is missing records that
// one; fixing the invalid NAD plans its pod (and empties its list), while
// the other keeps waiting for its own.
func TestFixedNADWakesThePodWaitingForIt(t *testing.T) {
	f := newFixture(t, 1)
	f.opts.Primary = false
	f.createNAD("fixme", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"fixme","type":"kuryr-cni","driver":"nested-sriov","subnetId":%q}`, f.dpNet.ID), nil)
	f.startController()
	node := f.ns + "-node-0"
	f.createPod("fixed", node, "fixme")
	f.createPod("still", node, "nope")
	waiting := func(name string, want ...string) {
		t.Helper()
		f.eventually(20*time.Second, name+" waiting for "+fmt.Sprint(want), func() (bool, string) {
			kp, err := f.kuryrPod(name)
			if err != nil {
				return false, err.Error()
			}
			return !specValid(kp) && slices.Equal(kp.Status.WaitingForNetworks, want), fmt.Sprintf("%+v", kp.Status)
		})
	}
	waiting("fixed", f.ns+"/fixme")
	waiting("still", f.ns+"/nope")

	var nad nadv1.NetworkAttachmentDefinition
	must(t, f.c.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "fixme"}, &nad))
	nad.Spec.Config = strings.Replace(nad.Spec.Config, "nested-sriov", "nested-dpdk", 1)
	must(t, f.c.Update(f.ctx, &nad))
	kp := f.waitReady("fixed")
	if len(kp.Status.WaitingForNetworks) != 0 {
		t.Fatalf("a planned pod still waits for %v", kp.Status.WaitingForNetworks)
	}
	waiting("still", f.ns+"/nope")
	for _, p := range []string{"fixed", "still"} {
		f.deletePod(p)
		f.waitGone(p)
	}
	if left := f.leftovers(); left != "" {
		t.Fatalf("after delete the cloud still holds: %s", left)
	}
}
