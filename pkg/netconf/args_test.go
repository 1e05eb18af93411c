package netconf

import (
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/userspace-cni/userspace/internal/cnitest"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Args
	}{
		{"empty", "", Args{}},
		{
			name: "multus with repeated keys",
			in: "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u;" +
				"IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u",
			want: Args{PodNamespace: "ns", PodName: "p", PodUID: "u", PodInfraContainerID: "abc"},
		},
		{
			name: "repeated key takes the last value",
			in:   "K8S_POD_NAME=first;K8S_POD_NAMESPACE=a;K8S_POD_NAME=second",
			want: Args{PodNamespace: "a", PodName: "second"},
		},
		{
			name: "trailing and doubled separators",
			in:   "K8S_POD_NAME=p;;K8S_POD_NAMESPACE=ns;",
			want: Args{PodNamespace: "ns", PodName: "p"},
		},
		{
			name: "unknown keys ignored without IgnoreUnknown",
			in:   "FOO=bar;K8S_POD_NAME=p;=empty",
			want: Args{PodName: "p"},
		},
		{
			name: "value containing =",
			in:   "K8S_POD_NAME=a=b",
			want: Args{PodName: "a=b"},
		},
		{
			name: "empty value",
			in:   "K8S_POD_NAME=",
			want: Args{},
		},
		{
			name: "legacy MAC",
			in:   "IgnoreUnknown=1;K8S_POD_NAME=p;MAC=02:00:00:00:00:aa",
			want: Args{PodName: "p", MAC: "02:00:00:00:00:aa"},
		},
		{
			name: "legacy IP single",
			in:   "IP=10.1.1.5",
			want: Args{IPs: []string{"10.1.1.5"}},
		},
		{
			name: "legacy IP list with CIDR and v6",
			in:   "IP=10.1.1.5/24, 10.1.2.6 ,fd00::5/64",
			want: Args{IPs: []string{"10.1.1.5/24", "10.1.2.6", "fd00::5/64"}},
		},
		{
			name: "repeated IP replaces",
			in:   "IP=10.0.0.1,10.0.0.2;IP=10.0.0.3",
			want: Args{IPs: []string{"10.0.0.3"}},
		},
		{
			name: "MAC and IP together",
			in:   "MAC=02:00:00:00:00:01;IP=192.168.0.10/24;K8S_POD_UID=uid-1",
			want: Args{PodUID: "uid-1", MAC: "02:00:00:00:00:01", IPs: []string{"192.168.0.10/24"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.in)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tt.in, err)
			}
			if len(got.IPs) == 0 {
				got.IPs = nil
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ParseArgs(%q) = %+v, want %+v", tt.in, *got, tt.want)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		subs []string
	}{
		{"pair without =", "K8S_POD_NAME=p;garbage", []string{`"garbage"`, "KEY=VALUE"}},
		{"only a word", "IgnoreUnknown", []string{`"IgnoreUnknown"`}},
		{"invalid MAC", "K8S_POD_NAME=p;MAC=not-a-mac", []string{"MAC", `"not-a-mac"`}},
		{"multicast MAC", "MAC=01:00:5e:00:00:01", []string{"MAC", `"01:00:5e:00:00:01"`, "multicast"}},
		{"empty MAC", "MAC=", []string{"MAC", `""`}},
		{"invalid IP", "IP=10.0.0.300", []string{"IP", `"10.0.0.300"`}},
		{"invalid IP in list", "IP=10.0.0.1,bogus/24", []string{"IP", `"bogus/24"`}},
		{"empty IP element", "IP=10.0.0.1,", []string{"IP", `"10.0.0.1,"`}},
		{"invalid CIDR prefix", "IP=10.0.0.1/33", []string{"IP", `"10.0.0.1/33"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseArgs(tt.in)
			if a != nil {
				t.Errorf("ParseArgs returned %+v with error %v", a, err)
			}
			cnitest.CheckError(t, err, types.ErrInvalidEnvironmentVariables, tt.subs...)
		})
	}
}
