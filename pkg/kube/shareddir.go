package kube

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/userspace-cni/userspace/pkg/policy"
)

// SharedDir finds the pod volume volumeName (policy.DefaultSharedDirVolume if
// empty) and returns the host directory behind it: a hostPath volume's path
// (cleaned), or for an emptyDir the kubelet's directory for it,
// <kubeletRoot>/pods/<pod UID>/volumes/kubernetes.io~empty-dir/<volume>
// (kubeletRoot defaults to policy.DefaultKubeletRoot).
//
// mountPath is where the pod's containers see it (the "mapped dir"): the
// first mount of the volume without a subPath in the containers, else in the
// init containers (sidecars); "" if none mounts it whole.
//
// ok is false when the pod has no such volume. A volume of another type, or
// a path that is relative or has a ".." element, is an error: the caller
// must still check hostPath against the node policy.
func SharedDir(pod *corev1.Pod, volumeName, kubeletRoot string) (hostPath, mountPath string, ok bool, err error) {
	if pod == nil {
		return "", "", false, errors.New("SharedDir: pod is nil")
	}
	if volumeName == "" {
		volumeName = policy.DefaultSharedDirVolume
	}
	if kubeletRoot == "" {
		kubeletRoot = policy.DefaultKubeletRoot
	}
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == volumeName {
			vol = &pod.Spec.Volumes[i]
			break
		}
	}
	if vol == nil {
		return "", "", false, nil
	}
	where := fmt.Sprintf("pod %s/%s volume %q", pod.Namespace, pod.Name, volumeName)
	switch {
	case vol.HostPath != nil:
		p := vol.HostPath.Path
		if err := policy.CheckAbs(p); err != nil {
			return "", "", true, fmt.Errorf("%s: hostPath %q: %w", where, p, err)
		}
		hostPath = filepath.Clean(p)
	case vol.EmptyDir != nil:
		if err := policy.CheckAbs(kubeletRoot); err != nil {
			return "", "", true, fmt.Errorf("kubelet root %q: %w", kubeletRoot, err)
		}
		uid := string(pod.UID)
		if !isPathElement(uid) {
			return "", "", true, fmt.Errorf("%s: pod UID %q cannot name a directory", where, uid)
		}
		if !isPathElement(volumeName) {
			return "", "", true, fmt.Errorf("%s: the volume name cannot name a directory", where)
		}
		hostPath = filepath.Join(filepath.Clean(kubeletRoot), "pods", uid, "volumes", "kubernetes.io~empty-dir", volumeName)
	default:
		return "", "", true, fmt.Errorf("%s is neither hostPath nor emptyDir: only those hold the sockets on the host", where)
	}
	return hostPath, mappedDir(pod, volumeName), true, nil
}

func mappedDir(pod *corev1.Pod, volumeName string) string {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			for _, m := range c.VolumeMounts {
				// A subPath mount shows only part of the volume;
				// the sockets live at its top.
				if m.Name == volumeName && m.SubPath == "" && m.SubPathExpr == "" && m.MountPath != "" {
					return filepath.Clean(m.MountPath)
				}
			}
		}
	}
	return ""
}

func isPathElement(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// IsEmptyDir reports whether the pod's volume volumeName
// (policy.DefaultSharedDirVolume if empty) is an emptyDir: storage that only that
// pod's containers see. A hostPath volume is a host directory any pod
// allowed hostPath volumes may mount too.
func IsEmptyDir(pod *corev1.Pod, volumeName string) bool {
	if pod == nil {
		return false
	}
	if volumeName == "" {
		volumeName = policy.DefaultSharedDirVolume
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == volumeName {
			return v.EmptyDir != nil
		}
	}
	return false
}
