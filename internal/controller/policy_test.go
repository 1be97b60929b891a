package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

func tenantPolicy(name string, spec v1alpha1.KuryrTenantPolicySpec) v1alpha1.KuryrTenantPolicy {
	return v1alpha1.KuryrTenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// TestCheckPolicies: the matching and the combination rule, rule by rule:
// no policy selecting the namespace allows everything; each policy that
// selects it (by name or label) must allow the request; the first
// violation in policy-name order is reported, naming its rule.
func TestCheckPolicies(t *testing.T) {
	t.Parallel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"tier": "gold"}}}
	plain := []v1alpha1.InterfaceRequest{{IfName: "eth0", SubnetID: "s1", SecurityGroups: []string{"g1"}}}
	withMAC := []v1alpha1.InterfaceRequest{{IfName: "net1", SubnetID: "s1", MAC: "02:00:00:00:00:01"}}
	withIPs := []v1alpha1.InterfaceRequest{{IfName: "net1", SubnetID: "s1", IPs: []string{"10.0.0.5"}}}
	two := append(append([]v1alpha1.InterfaceRequest{}, plain...), v1alpha1.InterfaceRequest{IfName: "net1", SubnetID: "s1"})
	gold := &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}
	for _, tc := range []struct {
		name     string
		policies []v1alpha1.KuryrTenantPolicy
		reqs     []v1alpha1.InterfaceRequest
		rule     string // "" = allowed
		policy   string
		applied  int
	}{
		{name: "no policy", reqs: withMAC},
		{name: "policy of another namespace", reqs: withMAC,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("b", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"team-b"}})}},
		{name: "selector not matching", reqs: withMAC,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("silver", v1alpha1.KuryrTenantPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "silver"}}})}},
		{name: "empty policy by name allows plain", reqs: plain, applied: 1,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"team-a"}})}},
		{name: "empty selector selects all, refuses mac", reqs: withMAC, rule: ruleAllowRequestedMAC, policy: "all", applied: 1,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("all", v1alpha1.KuryrTenantPolicySpec{NamespaceSelector: &metav1.LabelSelector{}})}},
		{name: "mac allowed", reqs: withMAC, applied: 1,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{NamespaceSelector: gold, AllowRequestedMAC: true})}},
		{name: "ips refused", reqs: withIPs, rule: ruleAllowRequestedIPs, policy: "a", applied: 1,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{NamespaceSelector: gold, AllowRequestedMAC: true})}},
		{name: "subnet refused", reqs: plain, rule: ruleAllowedSubnets, policy: "a", applied: 1,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"team-a"}, AllowedSubnets: []string{"s2"}})}},
		{name: "security group refused", reqs: plain, rule: ruleAllowedSecurityGroups, policy: "a", applied: 1,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"team-a"},
				AllowedSubnets: []string{"s1"}, AllowedSecurityGroups: []string{"g2"}})}},
		{name: "cap refused", reqs: two, rule: ruleMaxInterfacesPerPod, policy: "a", applied: 1,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"team-a"}, MaxInterfacesPerPod: 1})}},
		{name: "cap met", reqs: two, applied: 1,
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"team-a"}, MaxInterfacesPerPod: 2})}},
		{name: "every selecting policy must allow", reqs: withMAC, rule: ruleAllowRequestedMAC, policy: "z-strict", applied: 2,
			policies: []v1alpha1.KuryrTenantPolicy{
				tenantPolicy("z-strict", v1alpha1.KuryrTenantPolicySpec{NamespaceSelector: gold}),
				tenantPolicy("a-lax", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"team-a"}, AllowRequestedMAC: true}),
			}},
		{name: "first violation in name order", reqs: withMAC, rule: ruleAllowedSubnets, policy: "a", applied: 1,
			policies: []v1alpha1.KuryrTenantPolicy{
				tenantPolicy("b", v1alpha1.KuryrTenantPolicySpec{NamespaceSelector: gold}),
				tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{NamespaceSelector: gold, AllowRequestedMAC: true, AllowedSubnets: []string{"s9"}}),
			}},
		{name: "invalid selector refuses", reqs: plain, rule: ruleNamespaceSelector, policy: "bad",
			policies: []v1alpha1.KuryrTenantPolicy{tenantPolicy("bad", v1alpha1.KuryrTenantPolicySpec{NamespaceSelector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "In"}}}})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applied, v := checkPolicies(tc.policies, ns, tc.reqs)
			if len(applied) != tc.applied {
				t.Errorf("applied %v, want %d policies", applied, tc.applied)
			}
			switch {
			case tc.rule == "" && v != nil:
				t.Fatalf("refused: %v", v)
			case tc.rule != "" && v == nil:
				t.Fatalf("allowed, want rule %s of %s to refuse", tc.rule, tc.policy)
			case v != nil && (v.rule != tc.rule || v.policy != tc.policy):
				t.Fatalf("refused by %s rule %s (%v), want %s rule %s", v.policy, v.rule, v, tc.policy, tc.rule)
			case v != nil && !strings.Contains(v.Error(), "KuryrTenantPolicy "+tc.policy+", rule "+tc.rule+":"):
				t.Fatalf("message %q does not name the policy and rule", v.Error())
			}
		})
	}
}

// TestCheckPoliciesVNFOptions: a request turning port security off or
// carrying allowed address pairs is refused unless the policy allows VNF
// options; a request with port security explicitly on is not a VNF option.
func TestCheckPoliciesVNFOptions(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
	off, on := false, true
	deny := []v1alpha1.KuryrTenantPolicy{tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"team-a"}})}
	allow := []v1alpha1.KuryrTenantPolicy{tenantPolicy("a", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"team-a"}, AllowVNFOptions: true})}
	for name, req := range map[string]v1alpha1.InterfaceRequest{
		"port security off": {IfName: "vnf0", Network: "team-a/vnf", SubnetID: "s1", PortSecurityEnabled: &off},
		"address pairs":     {IfName: "vnf0", Network: "team-a/vnf", SubnetID: "s1", AllowedAddressPairs: []v1alpha1.AddressPair{{IPAddress: "10.0.0.0/24"}}},
	} {
		reqs := []v1alpha1.InterfaceRequest{req}
		if _, v := checkPolicies(deny, ns, reqs); v == nil || v.rule != ruleAllowVNFOptions {
			t.Errorf("%s without allowVNFOptions: %v, want rule %s", name, v, ruleAllowVNFOptions)
		}
		if _, v := checkPolicies(allow, ns, reqs); v != nil {
			t.Errorf("%s with allowVNFOptions: %v", name, v)
		}
	}
	plain := []v1alpha1.InterfaceRequest{{IfName: "net1", Network: "team-a/plain", SubnetID: "s1", PortSecurityEnabled: &on}}
	if _, v := checkPolicies(deny, ns, plain); v != nil {
		t.Errorf("port security on is no VNF option: %v", v)
	}
}

// FuzzCheckPolicies: any policy and request neither panics nor lets a
// request through that breaks a rule of a policy selecting the namespace
// by name.
func FuzzCheckPolicies(f *testing.F) {
	f.Add("s1", "g1", "", "", 1, 1, false, false)
	f.Add("s2", "g2", "02:00:00:00:00:01", "10.0.0.1", 0, 3, true, true)
	f.Fuzz(func(t *testing.T, subnet, sg, mac, ip string, limit, n int, allowMAC, allowIPs bool) {
		n = n%8 + 1
		if n < 1 {
			n = 1
		}
		spec := v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{"ns"}, AllowedSubnets: []string{"s1"}, AllowedSecurityGroups: []string{"g1"},
			MaxInterfacesPerPod: limit, AllowRequestedMAC: allowMAC, AllowRequestedIPs: allowIPs}
		var reqs []v1alpha1.InterfaceRequest
		for i := range n {
			r := v1alpha1.InterfaceRequest{IfName: fmt.Sprintf("net%d", i), SubnetID: subnet, SecurityGroups: []string{sg}, MAC: mac}
			if ip != "" {
				r.IPs = []string{ip}
			}
			reqs = append(reqs, r)
		}
		_, v := checkPolicies([]v1alpha1.KuryrTenantPolicy{tenantPolicy("p", spec)}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}, reqs)
		breaks := subnet != "s1" || sg != "g1" || (mac != "" && !allowMAC) || (ip != "" && !allowIPs) || (limit > 0 && n > limit)
		if breaks != (v != nil) {
			t.Fatalf("request breaks a rule: %v, refused: %v", breaks, v)
		}
	})
}

// createPolicy creates a cluster-scoped policy for the test and deletes it
// when the test ends.
func (f *fixture) createPolicy(name string, spec v1alpha1.KuryrTenantPolicySpec) *v1alpha1.KuryrTenantPolicy {
	f.t.Helper()
	p := &v1alpha1.KuryrTenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-" + name}, Spec: spec}
	must(f.t, f.c.Create(f.ctx, p))
	f.t.Cleanup(func() { _ = f.c.Delete(f.ctx, p) })
	return p
}

// waitPolicySeen waits until the running controller's cache holds policy
// name as ok says (a change is seen by new pods from then on).
func (f *fixture) waitPolicySeen(name string, ok func(v1alpha1.KuryrTenantPolicySpec) bool) {
	f.t.Helper()
	f.eventually(10*time.Second, "the controller sees KuryrTenantPolicy "+name, func() (bool, string) {
		var p v1alpha1.KuryrTenantPolicy
		err := f.rec.Load().client.Get(f.ctx, client.ObjectKey{Name: name}, &p)
		return err == nil && ok(p.Spec), fmt.Sprint(err, p.Spec)
	})
}

// waitRefused waits for the pod's KuryrPod to be refused by policy (rule
// of it): PolicyAllowed=False naming both, Ready=False, every interface
// Failed; and for the Warning Event on the pod that names them.
func (f *fixture) waitRefused(pod, policy, rule string) {
	f.t.Helper()
	want := "KuryrTenantPolicy " + policy + ", rule " + rule + ":"
	f.eventually(20*time.Second, "KuryrPod "+pod+" refused by "+want, func() (bool, string) {
		kp, err := f.kuryrPod(pod)
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionPolicyAllowed)
		ok := c != nil && c.Status == metav1.ConditionFalse && c.Reason == reasonPolicyViolation && strings.Contains(c.Message, want) &&
			meta.IsStatusConditionFalse(kp.Status.Conditions, v1alpha1.ConditionReady) && len(kp.Status.Interfaces) > 0
		for _, s := range kp.Status.Interfaces {
			ok = ok && s.State == v1alpha1.StateFailed && s.PortID == ""
		}
		return ok, fmt.Sprintf("%+v", kp.Status)
	})
	f.eventually(10*time.Second, "a PolicyViolation Event on pod "+pod, func() (bool, string) {
		evs := f.events(pod)
		for _, e := range evs {
			if strings.HasPrefix(e, reasonPolicyViolation+": ") && strings.Contains(e, want) {
				return true, ""
			}
		}
		return false, strings.Join(evs, " | ")
	})
}

// TestTenantPolicyRefusesWithoutCloudCalls: with a policy for the test's
// namespace (the pod subnet and security group only, two interfaces, no
// chosen MAC or IPs), an allowed pod gets its interface and PolicyAllowed
// naming the policy; pods asking for another subnet, another security
// group, three interfaces, a MAC or IPs are each refused with an Event and
// a condition naming the policy and the rule, and the controller makes no
// OpenStack request at all for them.
func TestTenantPolicyRefusesWithoutCloudCalls(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	other := f.sim.SeedSecurityGroup("other").ID
	f.createNAD("othersg", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"othersg","type":"kuryr-cni","driver":"nested-vlan","subnetId":%q,"securityGroups":[%q]}`, f.podSubnet, other), nil)
	f.createNAD("podnet", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"podnet","type":"kuryr-cni","driver":"nested-vlan","subnetId":%q}`, f.podSubnet), nil)
	p := f.createPolicy("tenant", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{f.ns},
		AllowedSubnets: []string{f.podSubnet}, AllowedSecurityGroups: []string{f.sg}, MaxInterfacesPerPod: 2})
	f.startController()
	node := f.ns + "-node-0"

	f.createPod("allowed", node, "podnet")
	kp := f.waitReady("allowed")
	if c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionPolicyAllowed); c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, p.Name) {
		t.Fatalf("allowed pod's PolicyAllowed %+v, want True naming %s", c, p.Name)
	}
	ports := len(f.ourPorts())

	before, counts := f.calls.Load(), f.sim.Counts()
	for _, tc := range []struct{ pod, networks, rule string }{
		{"subnet", "dataplane", ruleAllowedSubnets},
		{"sg", "othersg", ruleAllowedSecurityGroups},
		{"cap", "podnet,podnet@net2", ruleMaxInterfacesPerPod},
		{"mac", `[{"name":"podnet","mac":"02:00:00:00:aa:01"}]`, ruleAllowRequestedMAC},
		{"ips", `[{"name":"podnet","ips":["10.1.7.7/16"]}]`, ruleAllowRequestedIPs},
	} {
		f.createPod(tc.pod, node, tc.networks)
		f.waitRefused(tc.pod, p.Name, tc.rule)
	}
	if n := f.calls.Load() - before; n != 0 {
		t.Fatalf("refused pods cost %d OpenStack requests, want 0 (%v)", n, countsSince(counts, f.sim.Counts()))
	}
	if n := len(f.ourPorts()); n != ports {
		t.Fatalf("%d ports of ours after the refusals, want %d (the allowed pod's)", n, ports)
	}
	f.deletePod("subnet")
	f.waitGone("subnet")
}

// TestTenantPolicyChangeAppliesToNewPods: a pod choosing its MAC is refused
// while the policy forbids it; once the admin allows it, a new pod gets a
// port with that MAC, and the refused pod stays refused (it waits to be
// recreated). A second policy selecting the namespace by label then caps
// pods at one interface: every selecting policy must allow, so a two-
// interface pod is refused by it although the first allows it.
func TestTenantPolicyChangeAppliesToNewPods(t *testing.T) {
	f := newFixture(t, 1)
	f.createNAD("podnet", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"podnet","type":"kuryr-cni","driver":"nested-vlan","subnetId":%q}`, f.podSubnet), nil)
	p := f.createPolicy("tenant", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{f.ns}})
	f.startController()
	node := f.ns + "-node-0"
	mac := `[{"name":"podnet","mac":"02:00:00:00:bb:01"}]`

	f.createPod("before", node, mac)
	f.waitRefused("before", p.Name, ruleAllowRequestedMAC)

	must(t, f.c.Get(f.ctx, client.ObjectKeyFromObject(p), p))
	p.Spec.AllowRequestedMAC = true
	must(t, f.c.Update(f.ctx, p))
	f.waitPolicySeen(p.Name, func(s v1alpha1.KuryrTenantPolicySpec) bool { return s.AllowRequestedMAC })
	f.createPod("after", node, mac)
	kp := f.waitReady("after")
	var eth0 v1alpha1.InterfaceStatus
	for _, s := range kp.Status.Interfaces {
		if s.Network != "" {
			eth0 = s
		}
	}
	if eth0.MAC != "02:00:00:00:bb:01" {
		t.Fatalf("allowed pod's interfaces %+v, want the podnet one with MAC 02:00:00:00:bb:01", kp.Status.Interfaces)
	}
	if kp, err := f.kuryrPod("before"); err != nil || !meta.IsStatusConditionFalse(kp.Status.Conditions, v1alpha1.ConditionPolicyAllowed) {
		t.Fatalf("the pod refused before the change: %v %+v, want it still refused", err, kp.Status)
	}

	var ns corev1.Namespace
	must(t, f.c.Get(f.ctx, client.ObjectKey{Name: f.ns}, &ns))
	ns.Labels = map[string]string{"kuryr-test-tier": f.ns}
	must(t, f.c.Update(f.ctx, &ns))
	capped := f.createPolicy("capped", v1alpha1.KuryrTenantPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kuryr-test-tier": f.ns}}, MaxInterfacesPerPod: 1,
		AllowRequestedMAC: true})
	f.waitPolicySeen(capped.Name, func(v1alpha1.KuryrTenantPolicySpec) bool { return true })
	f.eventually(10*time.Second, "the controller sees the namespace's label", func() (bool, string) {
		var got corev1.Namespace
		err := f.rec.Load().client.Get(f.ctx, client.ObjectKey{Name: f.ns}, &got)
		return err == nil && got.Labels["kuryr-test-tier"] == f.ns, fmt.Sprint(err, got.Labels)
	})
	f.createPod("two", node, "podnet")
	f.waitRefused("two", capped.Name, ruleMaxInterfacesPerPod)
}

// TestTenantsCannotWritePolicies: a tenant with every permission in its own
// namespace (a Role of * on *, as a namespace admin may get) cannot create
// a KuryrTenantPolicy: it is cluster-scoped, out of any Role's reach.
func TestTenantsCannotWritePolicies(t *testing.T) {
	f := newFixture(t, 0)
	user := "tenant-" + f.ns
	must(t, f.c.Create(f.ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: f.ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}}))
	must(t, f.c.Create(f.ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: f.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "all"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: user}}}))
	cfg, err := env.AddUser(user, "system:authenticated")
	must(t, err)
	tc, err := client.New(cfg, client.Options{Scheme: scheme})
	must(t, err)
	// The Role works in the namespace (a ConfigMap can be made)...
	f.eventually(10*time.Second, "the tenant's Role in effect", func() (bool, string) {
		err := tc.Create(f.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: f.ns}})
		return err == nil || apierrors.IsAlreadyExists(err), fmt.Sprint(err)
	})
	// ...and gives nothing on the policy.
	p := &v1alpha1.KuryrTenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-mine"}, Spec: v1alpha1.KuryrTenantPolicySpec{
		Namespaces: []string{f.ns}, AllowRequestedMAC: true}}
	if err := tc.Create(f.ctx, p); !apierrors.IsForbidden(err) {
		t.Fatalf("tenant creating a KuryrTenantPolicy: %v, want Forbidden", err)
	}
	if err := tc.List(f.ctx, &v1alpha1.KuryrTenantPolicyList{}); !apierrors.IsForbidden(err) {
		t.Fatalf("tenant listing KuryrTenantPolicies: %v, want Forbidden", err)
	}
}
