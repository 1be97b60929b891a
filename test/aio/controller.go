package aio

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"
)

// On real nodes kuryr-controller is the overlay's Deployment too: a
// hostNetwork pod on one of the nodes, from the imported image, with the
// environment's settings in its ConfigMap and the simulated cloud's
// credentials in its clouds.yaml Secret. It reaches the API server and the
// cloud through the fabric proxies (the cloud's catalog names the address
// the controller asked Keystone at: cloudsim's AdvertiseRequestHost).

// controllerName is deploy/kuryr-dpdk's Deployment, ConfigMap and the
// prefix of its Secret.
const controllerName = "kuryr-controller"

// controllerObjects returns the overlay's Deployment and ConfigMap of
// kuryr-controller, the ConfigMap with the environment's settings, and the
// Secret the Deployment mounts, in the order to apply them.
func (e *Env) controllerObjects(rendered map[string]*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	dep, cm := rendered["Deployment/"+controllerName], rendered["ConfigMap/"+controllerName]
	if dep == nil || cm == nil {
		return nil, fmt.Errorf("%s renders no Deployment or ConfigMap %s", e.overlay(), controllerName)
	}
	if err := e.checkAPIEnv(dep); err != nil {
		return nil, err
	}
	settings := map[string]any{
		"clusterID": e.ClusterID(), "primary": true, "defaultDriver": string(e.MgmtDriver),
		"podSubnetID": e.Networks.Pod.ID, "workerSubnetIDs": []string{e.Networks.Worker.ID},
		"defaultDPDKDriver": "uio_pci_generic",
	}
	if e.opts.DRA {
		settings["podSecurityGroups"] = []string{e.poolSG}
		settings["pools"] = e.poolSettings(PoolSize{Min: DRAPoolMax, Max: DRAPoolMax, Batch: DRAPoolMax})
	}
	conf, err := yaml.Marshal(settings)
	if err != nil {
		return nil, err
	}
	cm = cm.DeepCopy()
	if err := unstructured.SetNestedField(cm.Object, string(conf), "data", "controller.yaml"); err != nil {
		return nil, err
	}
	c := e.Cloud.Credentials()
	clouds, err := yaml.Marshal(map[string]any{"clouds": map[string]any{"kuryr": map[string]any{
		"auth": map[string]string{"auth_url": e.fabricCloudURL + "/identity/v3", "username": c.UserName, "password": c.Password,
			"project_name": c.ProjectName, "user_domain_name": c.DomainName, "project_domain_name": c.DomainName},
		"region_name": c.Region,
	}}})
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: controllerName + "-cloud", Namespace: daemonNamespace},
		StringData: map[string]string{"clouds.yaml": string(clouds)}}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(secret)
	if err != nil {
		return nil, err
	}
	return []*unstructured.Unstructured{{Object: u}, cm, dep}, nil
}

// waitController waits until the Deployment's pod is ready (its /readyz
// answers: it reached the API server and the cloud).
func (e *Env) waitController(ctx context.Context) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := e.Clientset.AppsV1().Deployments(daemonNamespace).Get(ctx, controllerName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d of %d replicas available", d.Status.AvailableReplicas, ptrOr(d.Spec.Replicas))
		return d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == ptrOr(d.Spec.Replicas), nil
	})
	if err != nil {
		return fmt.Errorf("kuryr-controller Deployment %s not available (%s): %w", controllerName, last, err)
	}
	return nil
}

func ptrOr(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}
