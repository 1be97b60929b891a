package cniapi

import (
	"reflect"
	"strings"
	"testing"
)

// containerdArgs is CNI_ARGS as containerd 1.6 sends it (measured).
const containerdArgs = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=5bae17b3-ddbb-4ec6-8adb-30fca2bcfefa;IgnoreUnknown=1"

func TestParseCNIArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    CNIArgs
		wantErr string // substring of the code-7 message; "" = no error
	}{
		{name: "empty", in: "", want: CNIArgs{}},
		{name: "containerd", in: containerdArgs, want: CNIArgs{
			PodNamespace: "default", PodName: "web-0", PodInfraContainerID: "0123abcd",
			PodUID: "5bae17b3-ddbb-4ec6-8adb-30fca2bcfefa", IgnoreUnknown: true,
		}},
		{name: "any order, trailing semicolon", in: "IgnoreUnknown=true;K8S_POD_NAME=a.b;K8S_POD_NAMESPACE=kube-system;", want: CNIArgs{
			PodNamespace: "kube-system", PodName: "a.b", IgnoreUnknown: true,
		}},
		{name: "unknown kept with IgnoreUnknown", in: "IgnoreUnknown=1;MAC=aa:bb;K8S_POD_NAME=p", want: CNIArgs{
			PodName: "p", IgnoreUnknown: true, Other: map[string]string{"MAC": "aa:bb"},
		}},
		{name: "value with =", in: "IgnoreUnknown=1;X=a=b", want: CNIArgs{IgnoreUnknown: true, Other: map[string]string{"X": "a=b"}}},
		{name: "unknown without IgnoreUnknown", in: "K8S_POD_NAME=p;MAC=aa", wantErr: "unknown key MAC"},
		{name: "IgnoreUnknown=0", in: "IgnoreUnknown=0;MAC=aa", wantErr: "unknown key MAC"},
		{name: "no equals", in: "K8S_POD_NAME", wantErr: `"K8S_POD_NAME" is not KEY=VALUE`},
		{name: "empty key", in: "=x", wantErr: "is not a valid name"},
		{name: "duplicate", in: "K8S_POD_NAME=a;K8S_POD_NAME=b", wantErr: "K8S_POD_NAME given twice with different values"},
		{name: "IgnoreUnknown twice, differently", in: "IgnoreUnknown=true;IgnoreUnknown=0;MAC=aa", wantErr: "IgnoreUnknown given twice"},
		{name: "repeated bad value", in: "IgnoreUnknown=1;IgnoreUnknown=yes", wantErr: "IgnoreUnknown given twice"},
		// What real Multus v4.2.3 passes a delegate under containerd: its
		// own keys, then containerd's CNI_ARGS again.
		{name: "repeated as Multus does", in: "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=0a1b;" +
			"K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=0a1b;IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p", want: CNIArgs{
			PodNamespace: "ns", PodName: "p", PodUID: "0a1b", PodInfraContainerID: "abc", IgnoreUnknown: true,
		}},
		{name: "bad namespace", in: "K8S_POD_NAMESPACE=Default", wantErr: "CNI_ARGS K8S_POD_NAMESPACE"},
		{name: "long namespace", in: "K8S_POD_NAMESPACE=" + strings.Repeat("a", 64), wantErr: "K8S_POD_NAMESPACE"},
		{name: "bad pod name", in: "K8S_POD_NAME=-x", wantErr: "CNI_ARGS K8S_POD_NAME"},
		{name: "bad uid", in: "K8S_POD_UID=not a uid", wantErr: "CNI_ARGS K8S_POD_UID"},
		{name: "bad infra id", in: "K8S_POD_INFRA_CONTAINER_ID=a/b", wantErr: "K8S_POD_INFRA_CONTAINER_ID"},
		{name: "bad bool", in: "IgnoreUnknown=yes", wantErr: "CNI_ARGS IgnoreUnknown"},
		{name: "too long", in: "IgnoreUnknown=1;X=" + strings.Repeat("a", maxCNIArgsLen), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCNIArgs(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseCNIArgs(%q) = %+v, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if err.Code != CodeInvalidEnv || !strings.Contains(err.Msg, tt.wantErr) {
					t.Fatalf("ParseCNIArgs(%q) error = code %d %q, want code 4 containing %q", tt.in, err.Code, err.Msg, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCNIArgs(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseCNIArgs(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if verr := got.Validate(); verr != nil {
				t.Fatalf("Validate of a parsed value: %v", verr)
			}
			again, err := ParseCNIArgs(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("String() = %q parses to %+v, %v; want %+v", got.String(), again, err, got)
			}
		})
	}
}

func FuzzParseCNIArgs(f *testing.F) {
	f.Add(containerdArgs)
	f.Add("IgnoreUnknown=1;A=b=c;;")
	f.Add("K8S_POD_NAME")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseCNIArgs(s)
		if err != nil {
			if err.Code != CodeInvalidEnv || err.Msg == "" {
				t.Fatalf("error with code %d message %q, want code 4 with a message", err.Code, err.Msg)
			}
			// DEL's parse never fails: it keeps the valid pairs, which
			// are valid arguments.
			part, perr := ParseCNIArgsBestEffort(s)
			if perr == nil || perr.Code != err.Code {
				t.Fatalf("ParseCNIArgsBestEffort(%q) error %v, want ParseCNIArgs' %v", s, perr, err)
			}
			if verr := part.Validate(); verr != nil {
				t.Fatalf("best-effort parse of %q kept %+v, which Validate rejects: %v", s, part, verr)
			}
			return
		}
		if verr := a.Validate(); verr != nil {
			t.Fatalf("parsed %q but Validate says %v", s, verr)
		}
		again, err := ParseCNIArgs(a.String())
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip of %q: %q parses to %+v, %v; want %+v", s, a.String(), again, err, a)
		}
	})
}

// TestParseCNIArgsBestEffort: a DEL's CNI_ARGS keep their valid pairs when
// others are malformed, with the error ParseCNIArgs gives.
func TestParseCNIArgsBestEffort(t *testing.T) {
	t.Parallel()
	a, err := ParseCNIArgsBestEffort("K8S_POD_NAMESPACE=default;K8S_POD_NAME=Bad_Name;junk;K8S_POD_UID=5bae17b3-0000-4000-8000-000000000001")
	if err == nil || err.Code != CodeInvalidEnv || !strings.Contains(err.Msg, "K8S_POD_NAME") {
		t.Fatalf("error %v, want code 4 naming K8S_POD_NAME", err)
	}
	want := CNIArgs{PodNamespace: "default", PodUID: "5bae17b3-0000-4000-8000-000000000001"}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("kept %+v, want %+v", a, want)
	}
}
