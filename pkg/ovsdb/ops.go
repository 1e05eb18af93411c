package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/ovsdb/vswitch"
)

// Keys the plugin sets in external_ids. The container id and interface name
// identify the attachment (DEL and GC find ports by them); the socket path
// makes "one Interface per socket" checkable inside a transaction.
const (
	KeyContainerID  = "userspace-cni/container-id"
	KeyIfName       = "userspace-cni/ifname"
	KeyNetwork      = "userspace-cni/network"
	KeyPodNamespace = "userspace-cni/pod-namespace"
	KeyPodName      = "userspace-cni/pod-name"
	KeyPodUID       = "userspace-cni/pod-uid"
	KeySocket       = "userspace-cni/socket"
	KeyBridge       = "userspace-cni/bridge"
	// KeyCreatedBy marks a bridge the plugin created, the only kind it
	// ever deletes.
	KeyCreatedBy   = "userspace-cni/created-by"
	createdByValue = "userspace-cni"
)

// OVS interface types of vhost-user ports.
const (
	TypeVhostServer = "dpdkvhostuser"       // the switch is the server
	TypeVhostClient = "dpdkvhostuserclient" // the switch connects to the pod
	optServerPath   = "vhost-server-path"
)

// cond builds a where clause.
func cond(column string, fn ovs.ConditionFunction, value any) ovs.Condition {
	return ovs.NewCondition(column, fn, value)
}

func ovsMap(m map[string]string) ovs.OvsMap {
	gm := make(map[any]any, len(m))
	for k, v := range m {
		gm[k] = v
	}
	return ovs.OvsMap{GoMap: gm}
}

func uuidSet(uuids ...string) ovs.OvsSet {
	s := ovs.OvsSet{GoSet: make([]any, 0, len(uuids))}
	for _, u := range uuids {
		s.GoSet = append(s.GoSet, ovs.UUID{GoUUID: u})
	}
	return s
}

func selectOp(table string, where []ovs.Condition, columns ...string) ovs.Operation {
	if where == nil {
		where = []ovs.Condition{}
	}
	return ovs.Operation{Op: ovs.OperationSelect, Table: table, Where: where, Columns: append([]string{"_uuid"}, columns...)}
}

// transact runs ops in one transaction, bounded by the call timeout, and
// turns OVSDB errors into Go errors naming the failed operation.
func (e *Engine) transact(ctx context.Context, ops ...ovs.Operation) ([]ovs.OperationResult, error) {
	return e.transactWithin(ctx, e.cfg.CallTimeout, ops...)
}

// transactWithin is transact with its own bound, for a transaction that
// waits inside ovsdb-server.
func (e *Engine) transactWithin(ctx context.Context, d time.Duration, ops ...ovs.Operation) ([]ovs.OperationResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	res, err := e.c.transact(ctx, ops...)
	if err != nil {
		// No answer in time, or the connection broke: the switch is not
		// serving requests (CNI error 50), and a write may or may not have
		// committed.
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return nil, fmt.Errorf("%w: ovsdb-server at %s did not answer within %v", engine.ErrUnavailable, e.cfg.Endpoint, d)
		}
		return nil, fmt.Errorf("%w: OVSDB transaction on %s: %w", engine.ErrUnavailable, e.cfg.Endpoint, err)
	}
	opErrs, err := ovs.CheckOperationResults(res, ops)
	if err != nil {
		var commitErr ovs.OperationError
		if len(opErrs) == 0 && errors.As(err, &commitErr) {
			// Every operation succeeded but the commit failed (RFC 7047:
			// one extra result), as when a unique index is violated.
			opErrs = []ovs.OperationError{commitErr}
		}
		if len(opErrs) == 0 {
			return res, fmt.Errorf("OVSDB transaction: %w", err)
		}
		return res, &txError{errs: opErrs}
	}
	return res, nil
}

// txError keeps the operations that failed, so callers can tell a lost race
// (a wait) from a constraint violation.
type txError struct {
	errs []ovs.OperationError
}

func (t *txError) Error() string {
	parts := make([]string, 0, len(t.errs))
	for _, e := range t.errs {
		desc := "commit"
		if op := e.Operation(); op != nil {
			desc = op.Op + " " + op.Table
		}
		parts = append(parts, fmt.Sprintf("%s: %v", desc, e))
	}
	return "OVSDB transaction failed: " + strings.Join(parts, "; ")
}

// failedWait reports whether the transaction failed in a wait operation.
func failedWait(err error) bool {
	var t *txError
	if !errors.As(err, &t) {
		return false
	}
	for _, e := range t.errs {
		if op := e.Operation(); op != nil && op.Op == ovs.OperationWait {
			return true
		}
	}
	return false
}

// errBridgeGone reports that the bridge an ADD read was deleted before its
// transaction committed.
var errBridgeGone = errors.New("the bridge was deleted meanwhile")

// bridgeExistsOp fails the transaction unless the bridge row read earlier
// still exists under its name.
func bridgeExistsOp(bridgeUUID, name string) ovs.Operation {
	timeout := 0
	return ovs.Operation{Op: ovs.OperationWait, Table: vswitch.BridgeTable,
		Where:   []ovs.Condition{cond("_uuid", ovs.ConditionEqual, ovs.UUID{GoUUID: bridgeUUID})},
		Columns: []string{"name"}, Until: string(ovs.WaitConditionEqual),
		Rows: []ovs.Row{{"name": name}}, Timeout: &timeout}
}

// bridgeGone reports whether the transaction failed in bridgeExistsOp.
func bridgeGone(t *txError) bool {
	for _, e := range t.errs {
		if op := e.Operation(); op != nil && op.Op == ovs.OperationWait && op.Table == vswitch.BridgeTable {
			return true
		}
	}
	return false
}

// constraintViolation reports whether the transaction broke a uniqueness
// or integrity constraint (for example a name already taken).
func constraintViolation(err error) bool {
	var t *txError
	if !errors.As(err, &t) {
		return false
	}
	for _, e := range t.errs {
		var cv *ovs.ConstraintViolation
		if errors.As(e, &cv) {
			return true
		}
	}
	return false
}

// decode turns selected rows into models of type T.
func decode[T any](table string, res ovs.OperationResult) ([]*T, error) {
	out := make([]*T, 0, len(res.Rows))
	for _, row := range res.Rows {
		m := new(T)
		if err := decodeRow(row, m); err != nil {
			return nil, fmt.Errorf("decoding %s row: %w", table, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// ownerWhere matches rows owned by one attachment.
func ownerWhere(containerID, ifName string) []ovs.Condition {
	return []ovs.Condition{cond("external_ids", ovs.ConditionIncludes,
		ovsMap(map[string]string{KeyContainerID: containerID, KeyIfName: ifName}))}
}

// openvSwitchSelect reads the root row's DPDK state.
func openvSwitchSelect() ovs.Operation {
	return selectOp(vswitch.OpenvSwitchTable, nil, "dpdk_initialized", "iface_types", "other_config")
}

// checkDPDK is the pre-flight: a switch without DPDK accepts vhost-user
// ports in the database but never creates them.
func checkDPDK(rows []*vswitch.OpenvSwitch, ifType string) (*vswitch.OpenvSwitch, error) {
	if len(rows) != 1 {
		return nil, errors.New("the OVSDB has no Open_vSwitch row: the database is not initialised (ovs-vsctl init)")
	}
	root := rows[0]
	if !root.DpdkInitialized {
		return nil, errors.New("the switch is not DPDK-capable: Open_vSwitch dpdk_initialized is false " +
			"(set other_config:dpdk-init=true and run the DPDK build of ovs-vswitchd)")
	}
	if ifType != "" && !contains(root.IfaceTypes, ifType) {
		return nil, fmt.Errorf("the switch does not support %s ports (iface_types: %s)", ifType, strings.Join(root.IfaceTypes, ", "))
	}
	return root, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
