package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// The rules of a KuryrTenantPolicy, named as its spec fields: a violation
// names one of them.
const (
	ruleNamespaceSelector     = "namespaceSelector"
	ruleMaxInterfacesPerPod   = "maxInterfacesPerPod"
	ruleAllowedSubnets        = "allowedSubnets"
	ruleAllowedSecurityGroups = "allowedSecurityGroups"
	ruleAllowRequestedMAC     = "allowRequestedMAC"
	ruleAllowRequestedIPs     = "allowRequestedIPs"
	ruleAllowVNFOptions       = "allowVNFOptions"
)

const (
	reasonPolicyViolation = "PolicyViolation"
	reasonPolicyAllowed   = "PolicyAllowed"
)

// policyViolation is a pod's request refused by a KuryrTenantPolicy. Its
// text is tenant-visible (Event, condition): it names the policy, the rule
// and the pod's own request only.
type policyViolation struct {
	policy, rule, detail string
}

func (v *policyViolation) Error() string {
	return fmt.Sprintf("KuryrTenantPolicy %s, rule %s: %s", v.policy, v.rule, v.detail)
}

// vnfOptions says whether an interface request uses a NAD's VNF options
// (port security off, allowed address pairs), which a policy allows only
// with allowVNFOptions.
func vnfOptions(req v1alpha1.InterfaceRequest) bool {
	return (req.PortSecurityEnabled != nil && !*req.PortSecurityEnabled) || len(req.AllowedAddressPairs) > 0
}

// policyApplies says whether p selects namespace ns (by name, or by its
// labels through the selector). A selector that cannot be parsed is an
// error: the caller refuses rather than guess.
func policyApplies(p *v1alpha1.KuryrTenantPolicy, ns *corev1.Namespace) (bool, error) {
	if slices.Contains(p.Spec.Namespaces, ns.Name) {
		return true, nil
	}
	if p.Spec.NamespaceSelector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.NamespaceSelector)
	if err != nil {
		return false, err
	}
	return sel.Matches(labels.Set(ns.Labels)), nil
}

// checkPolicies decides a pod's planned interfaces against the policies.
// The combination rule (docs/security.md, "Tenant policy"): a namespace that
// no policy selects is unrestricted (as before policies existed); otherwise
// every policy that selects it must allow the request, so adding a policy
// can only narrow what a namespace may do. Policies are looked at by name
// order, so the violation reported is the same every time. It returns the
// names of the policies that applied.
func checkPolicies(policies []v1alpha1.KuryrTenantPolicy, ns *corev1.Namespace, reqs []v1alpha1.InterfaceRequest) ([]string, *policyViolation) {
	sorted := slices.Clone(policies)
	slices.SortFunc(sorted, func(a, b v1alpha1.KuryrTenantPolicy) int { return strings.Compare(a.Name, b.Name) })
	var applied []string
	for i := range sorted {
		p := &sorted[i]
		ok, err := policyApplies(p, ns)
		if err != nil {
			return applied, &policyViolation{p.Name, ruleNamespaceSelector,
				"the policy's namespace selector is invalid, so it cannot tell whether it applies; a cluster admin must fix it"}
		}
		if !ok {
			continue
		}
		applied = append(applied, p.Name)
		if v := checkPolicy(p, ns.Name, reqs); v != nil {
			return applied, v
		}
	}
	return applied, nil
}

// checkPolicy decides a pod's request against one policy that applies.
func checkPolicy(p *v1alpha1.KuryrTenantPolicy, ns string, reqs []v1alpha1.InterfaceRequest) *policyViolation {
	s := &p.Spec
	refuse := func(rule, format string, args ...any) *policyViolation {
		return &policyViolation{policy: p.Name, rule: rule, detail: fmt.Sprintf(format, args...)}
	}
	if s.MaxInterfacesPerPod > 0 && len(reqs) > s.MaxInterfacesPerPod {
		return refuse(ruleMaxInterfacesPerPod, "the pod asks for %d interfaces, pods of namespace %s may have at most %d",
			len(reqs), ns, s.MaxInterfacesPerPod)
	}
	for _, r := range reqs {
		if s.AllowedSubnets != nil && !slices.Contains(s.AllowedSubnets, r.SubnetID) {
			return refuse(ruleAllowedSubnets, "interface %s: subnet %s is not allowed in namespace %s", r.IfName, r.SubnetID, ns)
		}
		if s.AllowedSecurityGroups != nil {
			for _, sg := range r.SecurityGroups {
				if !slices.Contains(s.AllowedSecurityGroups, sg) {
					return refuse(ruleAllowedSecurityGroups, "interface %s: security group %s is not allowed in namespace %s", r.IfName, sg, ns)
				}
			}
		}
		if r.MAC != "" && !s.AllowRequestedMAC {
			return refuse(ruleAllowRequestedMAC, "interface %s: pods of namespace %s may not choose their MAC", r.IfName, ns)
		}
		if len(r.IPs) > 0 && !s.AllowRequestedIPs {
			return refuse(ruleAllowRequestedIPs, "interface %s: pods of namespace %s may not choose their IPs", r.IfName, ns)
		}
		if vnfOptions(r) && !s.AllowVNFOptions {
			return refuse(ruleAllowVNFOptions, "interface %s (network %s): networks of namespace %s may not use VNF options (port security off, allowed address pairs)",
				r.IfName, r.Network, ns)
		}
	}
	return nil
}

// policyDecided says kp's request (this generation of its spec) was
// already found allowed: a pod is checked once, before its first cloud
// call; a policy changed later applies to new pods, not to running ones.
func policyDecided(kp *v1alpha1.KuryrPod) bool {
	c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionPolicyAllowed)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == kp.Generation
}

// enforcePolicy checks a planned pod against the tenant policies, before
// any cloud call. Allowed: it returns the PolicyAllowed message for the
// status wireAll writes. Refused: it records PolicyAllowed=False and
// Ready=False (the interfaces Failed, nothing made), sends a Warning Event
// naming the policy and the rule, and returns refused.
func (r *PodReconciler) enforcePolicy(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod) (msg string, refused bool, err error) {
	var list v1alpha1.KuryrTenantPolicyList
	if err := r.client.List(ctx, &list); err != nil {
		return "", false, fmt.Errorf("list KuryrTenantPolicies: %w", err)
	}
	if len(list.Items) == 0 {
		return "no KuryrTenantPolicy exists: unrestricted", false, nil
	}
	var ns corev1.Namespace
	if err := r.client.Get(ctx, types.NamespacedName{Name: pod.Namespace}, &ns); err != nil {
		return "", false, fmt.Errorf("get namespace %s: %w", pod.Namespace, err)
	}
	applied, v := checkPolicies(list.Items, &ns, kp.Spec.Interfaces)
	if v == nil {
		if len(applied) == 0 {
			return fmt.Sprintf("no KuryrTenantPolicy selects namespace %s: unrestricted", pod.Namespace), false, nil
		}
		return "allowed by KuryrTenantPolicy " + strings.Join(applied, ", "), false, nil
	}
	log.FromContext(ctx).Info("pod refused by a tenant policy", "pod", pod.Namespace+"/"+pod.Name, "policy", v.policy, "rule", v.rule, "detail", v.detail)
	st := kp.Status.DeepCopy()
	st.WaitingForNetworks = nil
	setCondition(st, v1alpha1.ConditionSpecValid, true, reasonPlanned, fmt.Sprintf("%d interfaces", len(kp.Spec.Interfaces)), kp.Generation)
	setCondition(st, v1alpha1.ConditionPolicyAllowed, false, reasonPolicyViolation, v.Error(), kp.Generation)
	// Ready's reason is the one of any terminal failure: the pod waits to
	// be recreated, and the node agent fails its ADD at once.
	setCondition(st, v1alpha1.ConditionReady, false, reasonFailed, "refused by the tenant policy: "+v.Error(), kp.Generation)
	st.Summary = reasonPolicyViolation
	st.Interfaces = make([]v1alpha1.InterfaceStatus, len(kp.Spec.Interfaces))
	for i, req := range kp.Spec.Interfaces {
		st.Interfaces[i] = v1alpha1.InterfaceStatus{IfName: req.IfName, Driver: req.Driver, Network: req.Network,
			State: v1alpha1.StateFailed, Message: "refused by the tenant policy: " + v.Error()}
	}
	if err := r.writeStatus(ctx, kp, st); err != nil {
		return "", false, err
	}
	r.metrics.setWaiting(kp.Spec.PodUID, false)
	r.recorder.Eventf(pod, kp, corev1.EventTypeWarning, reasonPolicyViolation, "CheckTenantPolicy", "%s", v.Error())
	return "", true, nil
}
