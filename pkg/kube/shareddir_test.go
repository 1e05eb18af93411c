package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func podWith(vol corev1.Volume, mounts ...corev1.VolumeMount) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "p1", UID: "1f3c-uid"},
		Spec: corev1.PodSpec{
			Volumes:    []corev1.Volume{{Name: "other", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}, vol},
			Containers: []corev1.Container{{Name: "sidecarless"}, {Name: "app", VolumeMounts: mounts}},
		},
	}
}

func TestSharedDir(t *testing.T) {
	hostPath := corev1.Volume{Name: "shared-dir", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/cni/usrspcni/"}}}
	emptyDir := corev1.Volume{Name: "shared-dir", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}
	for _, tc := range []struct {
		name                string
		pod                 *corev1.Pod
		volume, kubeletRoot string
		host, mount         string
		ok, fails           bool
	}{
		{name: "hostPath", pod: podWith(hostPath, corev1.VolumeMount{Name: "shared-dir", MountPath: "/var/lib/cni/usrspcni"}),
			host: "/var/lib/cni/usrspcni", mount: "/var/lib/cni/usrspcni", ok: true},
		{name: "emptyDir", pod: podWith(emptyDir, corev1.VolumeMount{Name: "shared-dir", MountPath: "/sockets/"}),
			host: "/var/lib/kubelet/pods/1f3c-uid/volumes/kubernetes.io~empty-dir/shared-dir", mount: "/sockets", ok: true},
		{name: "emptyDir, other kubelet root", pod: podWith(emptyDir), kubeletRoot: "/data/kubelet",
			host: "/data/kubelet/pods/1f3c-uid/volumes/kubernetes.io~empty-dir/shared-dir", ok: true},
		{name: "subPath mount is not the mapped dir", pod: podWith(hostPath,
			corev1.VolumeMount{Name: "shared-dir", MountPath: "/part", SubPath: "x"},
			corev1.VolumeMount{Name: "shared-dir", MountPath: "/whole"}),
			host: "/var/lib/cni/usrspcni", mount: "/whole", ok: true},
		{name: "other volume name", pod: podWith(corev1.Volume{Name: "socks", VolumeSource: hostPath.VolumeSource}), volume: "socks",
			host: "/var/lib/cni/usrspcni", ok: true},
		{name: "no such volume", pod: podWith(corev1.Volume{Name: "data", VolumeSource: hostPath.VolumeSource})},
		{name: "configMap", pod: podWith(corev1.Volume{Name: "shared-dir", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}), ok: true, fails: true},
		{name: "relative hostPath", pod: podWith(corev1.Volume{Name: "shared-dir", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "var/x"}}}), ok: true, fails: true},
		{name: "dotdot hostPath", pod: podWith(corev1.Volume{Name: "shared-dir", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/cni/../../etc"}}}), ok: true, fails: true},
		{name: "relative kubelet root", pod: podWith(emptyDir), kubeletRoot: "kubelet", ok: true, fails: true},
	} {
		host, mount, ok, err := SharedDir(tc.pod, tc.volume, tc.kubeletRoot)
		if (err != nil) != tc.fails || ok != tc.ok || host != tc.host || mount != tc.mount {
			t.Errorf("%s: got %q, %q, %v, %v; want %q, %q, %v, fails=%v", tc.name, host, mount, ok, err, tc.host, tc.mount, tc.ok, tc.fails)
		}
	}
	bad := podWith(emptyDir)
	bad.UID = "../../etc"
	if _, _, _, err := SharedDir(bad, "", ""); err == nil {
		t.Error("a UID with a slash named a directory")
	}
	if _, _, _, err := SharedDir(nil, "", ""); err == nil {
		t.Error("nil pod accepted")
	}
}

func TestIsEmptyDir(t *testing.T) {
	hostPath := corev1.Volume{Name: "shared-dir", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/cni/usrspcni"}}}
	emptyDir := corev1.Volume{Name: "shared-dir", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		volume string
		want   bool
	}{
		{"emptyDir", podWith(emptyDir), "", true},
		{"emptyDir by its name", podWith(emptyDir), "shared-dir", true},
		{"hostPath", podWith(hostPath), "", false},
		// podWith's other volume is an emptyDir: only the named one counts.
		{"absent volume", podWith(hostPath), "socks", false},
		{"nil pod", nil, "", false},
	} {
		if got := IsEmptyDir(tc.pod, tc.volume); got != tc.want {
			t.Errorf("%s: IsEmptyDir = %v, want %v", tc.name, got, tc.want)
		}
	}
}
