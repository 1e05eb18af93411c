package ovsdb

// Test harness: libovsdb's in-memory OVSDB server on a unix socket, spoken to
// over the real protocol by the engine, plus a fake ovs-vswitchd.
//
// Differences between libovsdb's in-memory server (v0.8.1) and ovsdb-server
// that the harness corrects, so that tests exercise the engine as the real
// switch would:
//
//  1. "wait" semantics. The in-memory server does not implement RFC 7047
//     5.2.6: it counts the selected rows that equal all of "rows" in every
//     non-default column, so a wait "==" [{name: ours}] succeeds even when a
//     second, foreign row matches the where clause (the engine's onlyOneOp
//     guard would never fire), and a wait "!=" [{ofport: []}] never
//     succeeds (an empty set is a default value and is skipped, so every
//     row "matches"). ovsdb-server compares the projected rows as a set.
//  2. Blocking. The in-memory server runs a wait with a timeout inside its
//     global transaction lock, sleeping 200 ms between polls, so no other
//     client (ovs-vswitchd) can write while the engine waits for it.
//     ovsdb-server parks a waiting transaction and keeps serving others.
//  3. Select ignores "columns" and returns every non-default column;
//     ovsdb-server returns only the requested ones.
//  4. Locks: the in-memory server has no "lock" method (RFC 7047 4.1.8),
//     which the engine uses to learn whether ovs-vswitchd runs (the switch
//     holds the "ovs_vswitchd" lock).
//
// waitDB therefore wraps the in-memory database: it runs every transaction
// with each wait replaced by a select of the same rows, evaluates the wait
// per the RFC on that select's result (which, as in ovsdb-server, sees rows
// inserted earlier in the same transaction), and retries the whole
// transaction until the waits hold or time out; it trims selected rows to
// the requested columns. The fake switch writes to the database directly
// (not through the server's transaction lock), serialised with the server's
// transactions by waitDB.mu, which a retrying wait releases while it
// sleeps. Other clients of the in-memory server still queue behind a
// waiting transaction (difference 2 remains for them); no test depends on
// that. serveFakeOVSDB adds lock, steal and unlock; the fake switch holds
// ovs_vswitchd while it runs.
//
// What the in-memory server already does like ovsdb-server, and the tests
// rely on: garbage collection of unreferenced Port/Interface/Bridge rows at
// commit, map "includes" conditions, named UUIDs in where clauses, and a
// unique-index violation reported as one extra result after the
// operations' results (a commit error, not an operation's).

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/rpc2"
	"github.com/cenkalti/rpc2/jsonrpc"
	"github.com/go-logr/logr"
	"github.com/google/uuid"
	libdb "github.com/ovn-kubernetes/libovsdb/database"
	"github.com/ovn-kubernetes/libovsdb/database/inmemory"
	"github.com/ovn-kubernetes/libovsdb/model"
	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"
	"github.com/ovn-kubernetes/libovsdb/server"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/ovsdb/vswitch"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

const testDBName = "Open_vSwitch"

// waitDB is the in-memory database with ovsdb-server's wait semantics.
type waitDB struct {
	libdb.Database
	model model.DatabaseModel

	// mu serialises a server transaction (from Transact to its Commit) with
	// the fake switch's and the tests' direct writes.
	mu sync.Mutex
	// hook, if set, runs (under mu) at the start of every server
	// transaction, before its operations: a way to make another writer win
	// a race at an exact point.
	hook func(ops []ovs.Operation)
}

var _ libdb.Database = (*waitDB)(nil)

func (d *waitDB) NewTransaction(name string) libdb.Transaction {
	return &waitTxn{d: d, name: name}
}

// Commit commits a server transaction. One that changes something was left
// holding mu by Transact, so nothing slips in between.
func (d *waitDB) Commit(name string, id uuid.UUID, u libdb.Update) error {
	if len(u.GetUpdatedTables()) == 0 {
		d.mu.Lock()
	}
	defer d.mu.Unlock()
	return d.Database.Commit(name, id, u)
}

type waitTxn struct {
	d    *waitDB
	name string
}

func anyFailed(res []*ovs.OperationResult) bool {
	for _, r := range res {
		if r != nil && r.Error != "" {
			return true
		}
	}
	return false
}

func (x *waitTxn) Transact(ops ...ovs.Operation) ([]*ovs.OperationResult, libdb.Update) {
	d := x.d
	d.mu.Lock()
	if d.hook != nil {
		d.hook(ops)
	}
	start := time.Now()
	for {
		// The in-memory transaction expands named UUIDs in place: give each
		// attempt its own copy of the operations.
		probe, err := wireCopy(ops)
		if err != nil {
			r := ovs.ResultFromError(err)
			d.mu.Unlock()
			return []*ovs.OperationResult{&r}, nil
		}
		for i, op := range probe {
			if op.Op == ovs.OperationWait {
				probe[i] = ovs.Operation{Op: ovs.OperationSelect, Table: op.Table, Where: op.Where}
			}
		}
		res, upd := d.Database.NewTransaction(x.name).Transact(probe...)
		pending := -1
		for i, op := range ops {
			if i >= len(res) || res[i] == nil || res[i].Error != "" {
				break
			}
			if op.Op != ovs.OperationWait {
				continue
			}
			ok, err := d.waitHolds(op, res[i].Rows)
			if err != nil {
				r := ovs.ResultFromError(err)
				res[i] = &r
				clear(res[i+1:])
				break
			}
			if !ok {
				pending = i
				break
			}
			res[i] = &ovs.OperationResult{}
		}
		if pending < 0 {
			projectSelects(ops, res)
			if !anyFailed(res) && len(upd.GetUpdatedTables()) > 0 {
				return res, upd // Commit unlocks
			}
			d.mu.Unlock()
			return res, upd
		}
		op := ops[pending]
		if op.Timeout != nil && time.Since(start) >= time.Duration(*op.Timeout)*time.Millisecond {
			out := make([]*ovs.OperationResult, len(ops))
			copy(out, res[:pending])
			r := ovs.ResultFromError(&ovs.TimedOut{})
			out[pending] = &r
			d.mu.Unlock()
			return out, upd
		}
		d.mu.Unlock()
		time.Sleep(3 * time.Millisecond)
		d.mu.Lock()
	}
}

// projectSelects keeps only the requested columns of selected rows, as
// ovsdb-server does (the in-memory server returns every non-default
// column), so an engine that reads a column it did not ask for is caught.
func projectSelects(ops []ovs.Operation, res []*ovs.OperationResult) {
	for i, op := range ops {
		if op.Op != ovs.OperationSelect || len(op.Columns) == 0 || i >= len(res) || res[i] == nil {
			continue
		}
		for j, row := range res[i].Rows {
			kept := ovs.Row{}
			for _, c := range op.Columns {
				if v, ok := row[c]; ok {
					kept[c] = v
				}
			}
			res[i].Rows[j] = kept
		}
	}
}

// waitHolds evaluates a wait per RFC 7047 5.2.6: the rows the where clause
// selects, projected onto columns, compared as a set with rows.
func (d *waitDB) waitHolds(op ovs.Operation, selected []ovs.Row) (bool, error) {
	actual, err := d.projectAll(op.Table, op.Columns, selected)
	if err != nil {
		return false, err
	}
	expected, err := d.projectAll(op.Table, op.Columns, op.Rows)
	if err != nil {
		return false, err
	}
	equal := sameRowSet(actual, expected)
	switch op.Until {
	case string(ovs.WaitConditionEqual):
		return equal, nil
	case string(ovs.WaitConditionNotEqual):
		return !equal, nil
	}
	return false, &ovs.NotSupported{}
}

func sameRowSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func (d *waitDB) projectAll(table string, columns []string, rows []ovs.Row) (map[string]bool, error) {
	out := map[string]bool{}
	for i := range rows {
		m, err := d.model.NewModel(table)
		if err != nil {
			return nil, err
		}
		info, err := d.model.NewModelInfo(m)
		if err != nil {
			return nil, err
		}
		if err := d.model.Mapper.GetRowData(&rows[i], info); err != nil {
			return nil, err
		}
		var parts []string
		for _, c := range columns {
			v, err := info.FieldByColumn(c)
			if err != nil {
				return nil, err
			}
			parts = append(parts, c+"="+canonicalValue(reflect.ValueOf(v)))
		}
		out[strings.Join(parts, ";")] = true
	}
	return out, nil
}

// canonicalValue renders a model field so that equal OVSDB values render alike
// (sets in any order, absent optional values as "-").
func canonicalValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Invalid:
		return "-"
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "-"
		}
		return canonicalValue(v.Elem())
	case reflect.Slice:
		s := make([]string, v.Len())
		for i := range s {
			s[i] = canonicalValue(v.Index(i))
		}
		sort.Strings(s)
		return "[" + strings.Join(s, ",") + "]"
	case reflect.Map:
		return fmt.Sprint(v.Interface()) // fmt sorts map keys
	}
	return fmt.Sprintf("%#v", v.Interface())
}

// wireCopy is ops as the server decodes them from the wire, in new memory.
func wireCopy(ops []ovs.Operation) ([]ovs.Operation, error) {
	data, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	var wire []ovs.Operation
	if err := json.Unmarshal(data, &wire); err != nil {
		return nil, err
	}
	return wire, nil
}

// execLocked runs ops directly against the database and commits them; the
// caller holds d.mu. The ops go through JSON first, exactly as the server
// receives them.
func (d *waitDB) execLocked(ops ...ovs.Operation) ([]ovs.OperationResult, error) {
	wire, err := wireCopy(ops)
	if err != nil {
		return nil, err
	}
	res, upd := d.Database.NewTransaction(testDBName).Transact(wire...)
	out := make([]ovs.OperationResult, 0, len(res))
	for _, r := range res {
		if r != nil {
			out = append(out, *r)
		}
	}
	if _, err := ovs.CheckOperationResults(out, wire); err != nil {
		return out, fmt.Errorf("direct transaction: %w (%+v)", err, out)
	}
	if err := d.Database.Commit(testDBName, uuid.New(), upd); err != nil {
		return out, err
	}
	return out, nil
}

func (d *waitDB) exec(ops ...ovs.Operation) ([]ovs.OperationResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.execLocked(ops...)
}

// verdict is what the fake switch does with a new Interface.
type verdict struct {
	// Never: the switch never applies it (ovs-vswitchd down or stuck).
	Never bool
	// Error: the switch refuses it: ofport -1 and this error.
	Error string
	// NoSocket: a server-mode port is applied but its socket never appears.
	NoSocket bool
}

// fakeSwitch plays ovs-vswitchd: it gives each new Interface an ofport (or
// refuses it), creates the listening socket of each dpdkvhostuser port in
// its run directory (plus vhost-sock-dir) and removes it when the Interface
// goes away.
type fakeSwitch struct {
	d      *waitDB
	runDir string
	t      *testing.T

	// under d.mu
	decide    func(*vswitch.Interface) verdict
	seen      map[string]bool
	listeners map[string]*net.UnixListener
	nextPort  int

	stop chan struct{}
	done chan struct{}
}

func (s *fakeSwitch) run() {
	defer close(s.done)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		if err := s.step(); err != nil {
			s.t.Errorf("fake ovs-vswitchd: %v", err)
			return
		}
	}
}

func (s *fakeSwitch) step() error {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	rows, err := s.d.List(testDBName, vswitch.InterfaceTable)
	if err != nil {
		return err
	}
	for id := range s.seen {
		if _, ok := rows[id]; !ok {
			delete(s.seen, id)
			if l := s.listeners[id]; l != nil {
				_ = l.Close() // unlinks the socket file
				delete(s.listeners, id)
			}
		}
	}
	sockDir := s.runDir
	if root, err := s.d.List(testDBName, vswitch.OpenvSwitchTable); err == nil {
		for _, r := range root {
			if sub := r.(*vswitch.OpenvSwitch).OtherConfig["vhost-sock-dir"]; sub != "" {
				sockDir = filepath.Join(s.runDir, sub)
			}
		}
	}
	for uid, m := range rows {
		if s.seen[uid] {
			continue
		}
		s.seen[uid] = true
		i := m.(*vswitch.Interface)
		if i.Ofport != nil {
			continue // set by a test
		}
		v := verdict{}
		if s.decide != nil {
			v = s.decide(i)
		}
		switch {
		case v.Never:
			continue
		case v.Error != "":
			if _, err := s.d.execLocked(testUpdateOp(vswitch.InterfaceTable, uid, ovs.Row{"ofport": -1, "error": v.Error})); err != nil {
				return err
			}
			continue
		}
		if i.Type == TypeVhostServer && !v.NoSocket {
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(sockDir, i.Name), Net: "unix"})
			if err != nil {
				return fmt.Errorf("creating the vhost socket of %s: %w", i.Name, err)
			}
			s.listeners[uid] = l
		}
		s.nextPort++
		if _, err := s.d.execLocked(testUpdateOp(vswitch.InterfaceTable, uid, ovs.Row{"ofport": s.nextPort})); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeSwitch) close() {
	close(s.stop)
	<-s.done
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for id, l := range s.listeners {
		_ = l.Close()
		delete(s.listeners, id)
	}
}

// harness is one OVSDB server, one fake switch and the directories of a
// node policy, all private to a test.
type harness struct {
	t        *testing.T
	db       *waitDB
	locks    *lockTable
	sw       *fakeSwitch
	endpoint string
	runDir   string
	pol      *policy.Policy
	shared   string
	rootUUID string
}

// shortTempDir is a temporary directory with a short path: unix socket
// paths are limited to 107 bytes and t.TempDir() embeds the test name.
func shortTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clientModel, err := vswitch.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	schema := vswitch.Schema()
	dbModel, errs := model.NewDatabaseModel(schema, clientModel)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	logger := logr.Discard()
	db := &waitDB{
		Database: inmemory.NewDatabase(map[string]model.ClientDBModel{testDBName: clientModel}, &logger),
		model:    dbModel,
	}
	srv, err := server.NewOvsdbServer(db, &logger, dbModel)
	if err != nil {
		t.Fatal(err)
	}
	base := shortTempDir(t, "ovsdbt")
	sock := filepath.Join(base, "db.sock")
	locks := serveFakeOVSDB(t, srv, sock)

	h := &harness{t: t, db: db, locks: locks, endpoint: "unix:" + sock, runDir: filepath.Join(base, "run")}
	if err := os.Mkdir(h.runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.shared = filepath.Join(base, "shared")
	h.pol = &policy.Policy{SharedDirs: []string{h.shared}, ShortSocketDir: filepath.Join(base, "s")}

	res := h.exec(ovs.Operation{Op: ovs.OperationInsert, Table: vswitch.OpenvSwitchTable, Row: ovs.Row{
		"dpdk_initialized": true,
		"iface_types":      ovs.OvsSet{GoSet: []any{"dpdk", "dpdkvhostuser", "dpdkvhostuserclient", "internal", "system", "tap"}},
	}})
	h.rootUUID = res[0].UUID.GoUUID

	h.sw = &fakeSwitch{d: db, runDir: h.runDir, t: t, seen: map[string]bool{},
		listeners: map[string]*net.UnixListener{}}
	h.startSwitch()
	t.Cleanup(h.stopSwitch)
	return h
}

// startSwitch starts the fake ovs-vswitchd; like the real one, it holds the
// ovs_vswitchd lock while it runs.
func (h *harness) startSwitch() {
	h.t.Helper()
	// A probe that was granted the lock holds it until the server notices
	// its connection closed; the real switch would queue for it meanwhile.
	waitFor(h.t, "the ovs_vswitchd lock", func() bool { return h.locks.acquire(vswitchdLock, h.sw) })
	h.sw.stop, h.sw.done = make(chan struct{}), make(chan struct{})
	go h.sw.run()
}

// stopSwitch stops the fake ovs-vswitchd (idempotent).
func (h *harness) stopSwitch() {
	if h.sw.stop == nil {
		return
	}
	h.sw.close()
	h.sw.stop = nil
	h.locks.release(vswitchdLock, h.sw)
}

// lockTable implements OVSDB locks (RFC 7047 4.1.8), which the in-memory
// server lacks: the engine asks for ovs-vswitchd's lock to learn whether
// the switch runs.
type lockTable struct {
	mu      sync.Mutex
	holders map[string]any
}

func (l *lockTable) acquire(name string, holder any) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.holders[name]; ok && h != holder {
		return false
	}
	l.holders[name] = holder
	return true
}

func (l *lockTable) release(name string, holder any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holders[name] == holder {
		delete(l.holders, name)
	}
}

func (l *lockTable) releaseAll(holder any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, h := range l.holders {
		if h == holder {
			delete(l.holders, name)
		}
	}
}

type LockReply struct {
	Locked bool `json:"locked"`
}

// serveFakeOVSDB serves the in-memory server's methods on a unix socket, plus lock,
// steal and unlock. It does what OvsdbServer.Serve does, with its own
// JSON-RPC dispatcher so it can add the lock methods.
func serveFakeOVSDB(t *testing.T, o *server.OvsdbServer, sock string) *lockTable {
	t.Helper()
	locks := &lockTable{holders: map[string]any{}}
	rs := rpc2.NewServer()
	rs.Handle("list_dbs", o.ListDatabases)
	rs.Handle("get_schema", o.GetSchema)
	rs.Handle("transact", o.Transact)
	rs.Handle("cancel", o.Cancel)
	rs.Handle("monitor", o.Monitor)
	rs.Handle("monitor_cond", o.MonitorCond)
	rs.Handle("monitor_cond_since", o.MonitorCondSince)
	rs.Handle("monitor_cancel", o.MonitorCancel)
	rs.Handle("echo", o.Echo)
	lockName := func(args []any) (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("want one lock name, got %v", args)
		}
		name, ok := args[0].(string)
		if !ok {
			return "", fmt.Errorf("lock name %v is not a string", args[0])
		}
		return name, nil
	}
	rs.Handle("lock", func(c *rpc2.Client, args []any, reply *LockReply) error {
		name, err := lockName(args)
		if err != nil {
			return err
		}
		// A client that does not get the lock would be queued and told
		// later; nobody here waits for that.
		reply.Locked = locks.acquire(name, c)
		return nil
	})
	rs.Handle("steal", func(c *rpc2.Client, args []any, reply *LockReply) error {
		name, err := lockName(args)
		if err != nil {
			return err
		}
		locks.mu.Lock()
		locks.holders[name] = c
		locks.mu.Unlock()
		reply.Locked = true
		return nil
	})
	rs.Handle("unlock", func(c *rpc2.Client, args []any, _ *[]any) error {
		name, err := lockName(args)
		if err != nil {
			return err
		}
		locks.release(name, c)
		return nil
	})
	rs.OnDisconnect(func(c *rpc2.Client) { locks.releaseAll(c) })

	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { rs.ServeCodec(jsonrpc.NewJSONCodec(c)) })
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
		o.Close()
	})
	return locks
}

// exec runs ops directly in the database, failing the test on error.
func (h *harness) exec(ops ...ovs.Operation) []ovs.OperationResult {
	h.t.Helper()
	res, err := h.db.exec(ops...)
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// setVerdict decides what the fake switch does with new Interfaces.
func (h *harness) setVerdict(f func(*vswitch.Interface) verdict) {
	h.db.mu.Lock()
	defer h.db.mu.Unlock()
	h.sw.decide = f
}

// setHook installs a hook run at the start of each server transaction.
func (h *harness) setHook(f func(ops []ovs.Operation)) {
	h.db.mu.Lock()
	defer h.db.mu.Unlock()
	h.db.hook = f
}

func (h *harness) setRoot(row ovs.Row) {
	h.t.Helper()
	h.exec(testUpdateOp(vswitch.OpenvSwitchTable, h.rootUUID, row))
}

func testUpdateOp(table, uid string, row ovs.Row) ovs.Operation {
	return ovs.Operation{Op: ovs.OperationUpdate, Table: table, Row: row,
		Where: []ovs.Condition{cond("_uuid", ovs.ConditionEqual, ovs.UUID{GoUUID: uid})}}
}

// connect opens an engine on the harness's server.
func (h *harness) connect(confirm time.Duration) *Engine {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := Connect(ctx, Config{Endpoint: h.endpoint, RunDir: h.runDir, ConfirmTimeout: confirm})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(e.Close)
	return e
}

// attachment describes an attachment the way the plugin does: a per-pod
// directory under the shared directory, socket named after the port, the
// directory prepared. mode is netconf.VhostClient or netconf.VhostServer.
func (h *harness) attachment(containerID, ifName, mode string) *engine.Attachment {
	h.t.Helper()
	dir := filepath.Join(h.shared, configdata.ShortID(containerID))
	return h.attachmentIn(containerID, ifName, mode, dir, true, configdata.ShortID(containerID)+"-"+ifName)
}

func (h *harness) attachmentIn(containerID, ifName, mode, dir string, ownDir bool, socket string) *engine.Attachment {
	h.t.Helper()
	l, err := sockdir.Plan(h.pol, dir, ownDir, socket)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := l.Prepare(""); err != nil {
		h.t.Fatal(err)
	}
	return &engine.Attachment{
		ContainerID:  containerID,
		IfName:       ifName,
		Netns:        "/var/run/netns/" + configdata.ShortID(containerID),
		Network:      "net1",
		PodNamespace: "ns1",
		PodName:      "pod-" + configdata.ShortID(containerID),
		PodUID:       "uid-" + containerID,
		Host: netconf.UserSpaceConf{
			Engine: netconf.EngineOVSDPDK, IfType: netconf.IfTypeVhostUser, NetType: netconf.NetTypeBridge,
			Vhost:  netconf.VhostConf{Mode: mode},
			Bridge: netconf.BridgeConf{BridgeName: "br0"},
		},
		Layout: l,
	}
}

// Database snapshots, keyed by name.

func listRows[T any](h *harness, table string) map[string]*T {
	h.t.Helper()
	h.db.mu.Lock()
	rows, err := h.db.List(testDBName, table)
	h.db.mu.Unlock()
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]*T{}
	for _, m := range rows {
		v := reflect.ValueOf(m).Elem()
		name := ""
		if f := v.FieldByName("Name"); f.IsValid() {
			name = f.String()
		} else {
			name = v.FieldByName("UUID").String()
		}
		out[name] = m.(*T)
	}
	return out
}

func (h *harness) interfaces() map[string]*vswitch.Interface {
	return listRows[vswitch.Interface](h, vswitch.InterfaceTable)
}
func (h *harness) ports() map[string]*vswitch.Port {
	return listRows[vswitch.Port](h, vswitch.PortTable)
}
func (h *harness) bridges() map[string]*vswitch.Bridge {
	return listRows[vswitch.Bridge](h, vswitch.BridgeTable)
}
func (h *harness) root() *vswitch.OpenvSwitch {
	for _, r := range listRows[vswitch.OpenvSwitch](h, vswitch.OpenvSwitchTable) {
		return r
	}
	h.t.Fatal("no Open_vSwitch row")
	return nil
}

// bridgePortNames lists the names of the ports on a bridge.
func (h *harness) bridgePortNames(bridge string) []string {
	h.t.Helper()
	b := h.bridges()[bridge]
	if b == nil {
		return nil
	}
	byUUID := map[string]string{}
	for name, p := range h.ports() {
		byUUID[p.UUID] = name
	}
	var names []string
	for _, u := range b.Ports {
		names = append(names, byUUID[u])
	}
	slices.Sort(names)
	return names
}

// addBridge creates a bridge the way an administrator would (no plugin
// marker), with its local port.
func (h *harness) addBridge(name, datapathType string) {
	h.t.Helper()
	h.exec(
		ovs.Operation{Op: ovs.OperationInsert, Table: vswitch.InterfaceTable, UUIDName: "bi",
			Row: ovs.Row{"name": name, "type": "internal"}},
		ovs.Operation{Op: ovs.OperationInsert, Table: vswitch.PortTable, UUIDName: "bp",
			Row: ovs.Row{"name": name, "interfaces": uuidSet("bi")}},
		ovs.Operation{Op: ovs.OperationInsert, Table: vswitch.BridgeTable, UUIDName: "br",
			Row: ovs.Row{"name": name, "datapath_type": datapathType, "ports": uuidSet("bp")}},
		ovs.Operation{Op: ovs.OperationMutate, Table: vswitch.OpenvSwitchTable,
			Where:     []ovs.Condition{cond("_uuid", ovs.ConditionEqual, ovs.UUID{GoUUID: h.rootUUID})},
			Mutations: []ovs.Mutation{*ovs.NewMutation("bridges", ovs.MutateOperationInsert, uuidSet("br"))}},
	)
}

// foreignPortOps adds a port someone else made (an Interface with the given
// columns and a Port of the same name) to a bridge.
func foreignPortOps(bridge string, iface ovs.Row) []ovs.Operation {
	return []ovs.Operation{
		{Op: ovs.OperationInsert, Table: vswitch.InterfaceTable, UUIDName: "fi", Row: iface},
		{Op: ovs.OperationInsert, Table: vswitch.PortTable, UUIDName: "fp",
			Row: ovs.Row{"name": iface["name"], "interfaces": uuidSet("fi")}},
		{Op: ovs.OperationMutate, Table: vswitch.BridgeTable,
			Where:     []ovs.Condition{cond("name", ovs.ConditionEqual, bridge)},
			Mutations: []ovs.Mutation{*ovs.NewMutation("ports", ovs.MutateOperationInsert, uuidSet("fp"))}},
	}
}

func (h *harness) addForeignPort(bridge string, iface ovs.Row) {
	h.t.Helper()
	h.exec(foreignPortOps(bridge, iface)...)
}

// waitFor polls cond until it holds or a second passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func errorContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

// recordTransactions records, for each server transaction from now on, the
// operations that write ("insert Interface", "mutate Bridge", ...).
func (h *harness) recordTransactions() func() [][]string {
	var mu sync.Mutex
	var txs [][]string
	h.setHook(func(ops []ovs.Operation) {
		var w []string
		for _, op := range ops {
			if op.Op != ovs.OperationSelect && op.Op != ovs.OperationWait {
				w = append(w, op.Op+" "+op.Table)
			}
		}
		if len(w) > 0 {
			mu.Lock()
			txs = append(txs, w)
			mu.Unlock()
		}
	})
	return func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(txs)
	}
}

// restartSwitch plays ovs-vswitchd killed and started again on the same
// database: its sockets are gone, and it creates new ones (new files) for
// every server-mode port and numbers the ports again.
func (h *harness) restartSwitch() {
	h.t.Helper()
	h.stopSwitch()
	h.db.mu.Lock()
	rows, err := h.db.List(testDBName, vswitch.InterfaceTable)
	h.db.mu.Unlock()
	if err != nil {
		h.t.Fatal(err)
	}
	for uid := range rows {
		h.exec(testUpdateOp(vswitch.InterfaceTable, uid, ovs.Row{"ofport": ovs.OvsSet{GoSet: []any{}}}))
	}
	h.db.mu.Lock()
	h.sw.seen = map[string]bool{}
	h.db.mu.Unlock()
	h.startSwitch()
}

// emptyDatabase plays ovsdb-server restarted with an empty database (and
// initialised again): no bridge, port or interface is left.
func (h *harness) emptyDatabase() {
	h.t.Helper()
	h.exec(testUpdateOp(vswitch.OpenvSwitchTable, h.rootUUID, ovs.Row{"bridges": ovs.OvsSet{GoSet: []any{}}}))
}
