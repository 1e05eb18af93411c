package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/podapi"
)

// defaultAttempts bounds the PATCH attempts of one update. Each conflict
// means another writer succeeded, so n concurrent writers need at most n
// attempts; the caller's context bounds the time as well.
const defaultAttempts = 20

// maxRetryDelay caps the random pause before re-reading after a conflict;
// the pause spreads writers that conflicted together.
const maxRetryDelay = 50 * time.Millisecond

// AddConfigData publishes entry in the pod's configuration-data annotation
// (a JSON array of configdata.ConfigData) and, unless mappedDir is empty,
// sets the mapped-dir annotation to it.
//
// An element with the same ifName is replaced whatever its containerId: a
// runtime re-adding the attachment, or an earlier sandbox of the same pod
// whose DEL never came, leaves no duplicate. Other elements are kept byte
// for byte, whoever wrote them. A value that is not a JSON array at all is
// unusable to any reader and is replaced.
//
// pod is the pod as read by Pod: in the common case the update is a single
// merge PATCH that carries pod's resourceVersion, so the API server refuses
// it if anything changed the pod since (409); the pod is then read again and
// the update redone, a bounded number of times. Nothing is sent when the
// annotations already hold exactly this. pod is not modified.
func (c *Client) AddConfigData(ctx context.Context, pod *corev1.Pod, entry *configdata.ConfigData, mappedDir string) error {
	if pod == nil || entry == nil {
		return errors.New("AddConfigData: pod and entry are required")
	}
	if entry.ContainerID == "" || entry.IfName == "" {
		return fmt.Errorf("config data for pod %s/%s: containerId %q and ifName %q are both required",
			pod.Namespace, pod.Name, entry.ContainerID, entry.IfName)
	}
	raw, err := json.Marshal(entry)
	if err != nil {
		return fmt.Errorf("encoding config data of %s for pod %s/%s: %w", entry.IfName, pod.Namespace, pod.Name, err)
	}
	key := entryKey{ContainerID: entry.ContainerID, IfName: entry.IfName}
	start := pod
	if pod.ResourceVersion == "" {
		start = nil // not read from the API: nothing to base a precondition on
	}
	return c.update(ctx, pod.Namespace, pod.Name, pod.UID, start, func(p *corev1.Pod) (map[string]*string, error) {
		changes := map[string]*string{}
		v, changed, err := withEntry(p.Annotations[configdata.AnnotationConfigData], key, raw)
		if err != nil {
			return nil, fmt.Errorf("annotation %s of pod %s/%s: %w", configdata.AnnotationConfigData, p.Namespace, p.Name, err)
		}
		if changed {
			changes[configdata.AnnotationConfigData] = &v
		}
		if mappedDir != "" && p.Annotations[configdata.AnnotationMappedDir] != mappedDir {
			changes[configdata.AnnotationMappedDir] = &mappedDir
		}
		return changes, nil
	})
}

// RemoveConfigData removes the element of exactly this attachment
// (containerID and ifName) from the pod's configuration-data annotation and
// nothing else; the annotation goes when it is left empty. A pod that is
// gone, or holds no such element, is success. One GET, plus one PATCH when
// there is something to remove. DEL must not fail because the API is down:
// the caller bounds ctx, logs the error and goes on.
func (c *Client) RemoveConfigData(ctx context.Context, namespace, name, containerID, ifName string) error {
	if containerID == "" || ifName == "" {
		return fmt.Errorf("removing config data from pod %s/%s: containerId %q and ifName %q are both required",
			namespace, name, containerID, ifName)
	}
	key := entryKey{ContainerID: containerID, IfName: ifName}
	err := c.update(ctx, namespace, name, "", nil, func(p *corev1.Pod) (map[string]*string, error) {
		v, removed, err := withoutEntry(p.Annotations[configdata.AnnotationConfigData], key)
		if err != nil {
			return nil, fmt.Errorf("annotation %s of pod %s/%s: %w", configdata.AnnotationConfigData, p.Namespace, p.Name, err)
		}
		if !removed {
			return nil, nil
		}
		if v == "" {
			return map[string]*string{configdata.AnnotationConfigData: nil}, nil
		}
		return map[string]*string{configdata.AnnotationConfigData: &v}, nil
	})
	if podapi.IsNotFound(err) {
		return nil
	}
	return err
}

// update applies edit to the pod's annotations under optimistic
// concurrency. edit returns the annotations to set (nil value: delete);
// none means there is nothing to do. pod, if not nil, is the pod as last
// read; otherwise it is read first. A non-empty uid must match the pod read.
func (c *Client) update(ctx context.Context, namespace, name string, uid types.UID, pod *corev1.Pod, edit func(*corev1.Pod) (map[string]*string, error)) error {
	for attempt := 1; ; attempt++ {
		if pod == nil {
			p, err := c.get(ctx, namespace, name)
			if err != nil {
				return err
			}
			if uid != "" && p.UID != uid {
				return &podapi.Error{Verb: "get", Namespace: namespace, Name: name, Kind: podapi.ErrUIDMismatch,
					Err: fmt.Errorf("the pod was re-created: UID %s, expected %s", p.UID, uid)}
			}
			pod = p
		}
		changes, err := edit(pod)
		if err != nil || len(changes) == 0 {
			return err
		}
		err = c.patch(ctx, namespace, name, pod.ResourceVersion, changes)
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return classify("patch", namespace, name, err)
		}
		if attempt >= c.attempts {
			return &podapi.Error{Verb: "patch", Namespace: namespace, Name: name, Kind: podapi.ErrConflict,
				Err: fmt.Errorf("gave up after %d attempts: %w", attempt, err)}
		}
		if err := pause(ctx, attempt); err != nil {
			return classify("patch", namespace, name, err)
		}
		pod = nil
	}
}

// patch sends a JSON merge patch of the annotations that carries
// resourceVersion: the API server applies it only if the pod is still at
// that version, and answers 409 Conflict otherwise.
func (c *Client) patch(ctx context.Context, namespace, name, resourceVersion string, annotations map[string]*string) error {
	var body struct {
		Metadata struct {
			ResourceVersion string             `json:"resourceVersion"`
			Annotations     map[string]*string `json:"annotations"`
		} `json:"metadata"`
	}
	body.Metadata.ResourceVersion = resourceVersion
	body.Metadata.Annotations = annotations
	data, err := json.Marshal(&body)
	if err != nil {
		return fmt.Errorf("encoding patch: %w", err)
	}
	return c.rc.Patch(types.MergePatchType).MaxRetries(maxRetries).Namespace(namespace).Resource("pods").Name(name).
		Body(data).Do(ctx).Error()
}

// pause waits a random moment, longer with each attempt, or until ctx ends.
func pause(ctx context.Context, attempt int) error {
	d := min(time.Duration(attempt)*5*time.Millisecond, maxRetryDelay)
	t := time.NewTimer(rand.N(d) + time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// entryKey identifies an attachment's element in the annotation.
type entryKey struct {
	ContainerID string `json:"containerId"`
	IfName      string `json:"ifName"`
}

// parseEntries splits an annotation value into its elements; ok is false
// when the value is not a JSON array. Empty and "null" are no elements.
func parseEntries(value string) (elems []json.RawMessage, ok bool) {
	v := bytes.TrimSpace([]byte(value))
	if len(v) == 0 || string(v) == "null" {
		return nil, true
	}
	if err := json.Unmarshal(v, &elems); err != nil {
		return nil, false
	}
	return elems, true
}

// keyOf reads an element's identity; ok is false for an element that is
// not an object with both fields (kept untouched: it is not ours).
func keyOf(elem json.RawMessage) (entryKey, bool) {
	var k entryKey
	if json.Unmarshal(elem, &k) != nil || k.ContainerID == "" || k.IfName == "" {
		return entryKey{}, false
	}
	return k, true
}

// withEntry returns value with entry in place of every element for the same
// ifName (at the first one's position, else appended). changed is false when
// the result would equal value.
func withEntry(value string, key entryKey, entry json.RawMessage) (string, bool, error) {
	elems, ok := parseEntries(value)
	if !ok {
		elems = nil
	}
	out := make([]json.RawMessage, 0, len(elems)+1)
	placed := false
	for _, e := range elems {
		if k, ok := keyOf(e); ok && k.IfName == key.IfName {
			if !placed {
				out = append(out, entry)
				placed = true
			}
			continue
		}
		out = append(out, e)
	}
	if !placed {
		out = append(out, entry)
	}
	data, err := json.Marshal(out)
	if err != nil {
		return "", false, fmt.Errorf("re-encoding: %w", err)
	}
	return string(data), string(data) != value, nil
}

// withoutEntry returns value without the element for key; removed is false
// when there is none (value is then left alone, even if malformed). An
// empty result is "".
func withoutEntry(value string, key entryKey) (string, bool, error) {
	elems, ok := parseEntries(value)
	if !ok {
		return value, false, nil
	}
	out := make([]json.RawMessage, 0, len(elems))
	for _, e := range elems {
		if k, ok := keyOf(e); ok && k == key {
			continue
		}
		out = append(out, e)
	}
	if len(out) == len(elems) {
		return value, false, nil
	}
	if len(out) == 0 {
		return "", true, nil
	}
	data, err := json.Marshal(out)
	if err != nil {
		return "", false, fmt.Errorf("re-encoding: %w", err)
	}
	return string(data), true, nil
}
