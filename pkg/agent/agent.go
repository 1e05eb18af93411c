// Package agent is the node agent: a long-running process, next to the
// short-lived CNI plugin, that watches the switches the plugin's records
// name and, when a switch comes back after a restart (or with an empty
// database), restores every attachment it lost through the plugin's own
// code (same records, same sandbox locks, same engines). It also tears
// down, as DEL would, attachments whose pod no longer exists, records
// Kubernetes Events on pods whose attachment was lost and restored, and
// serves /healthz, /readyz and Prometheus /metrics.
//
// The plugin does not depend on it: without the agent, everything works as
// before, and restarts of a switch are not repaired.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/ovsdb"
	"github.com/userspace-cni/userspace/pkg/plugin"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/state"
)

// Kube is what the agent needs of the Kubernetes API.
type Kube interface {
	// Pods lists the pods on this node: "namespace/name" to UID.
	Pods(ctx context.Context) (map[string]string, error)
	// Event records an event on a pod.
	Event(ctx context.Context, ref PodRef, eventType, reason, message string) error
}

// PodRef names a pod.
type PodRef struct {
	Namespace, Name, UID string
}

// Event reasons the agent records on pods.
const (
	ReasonLost     = "UserspaceAttachmentLost"
	ReasonRestored = "UserspaceAttachmentRestored"
)

// Config configures an agent. Zero durations take the defaults.
type Config struct {
	// Plugin is the plugin's code, wired to the node policy and switches.
	Plugin *plugin.Plugin
	Log    *slog.Logger
	// Kube, when set, lets the agent collect orphans and record Events.
	Kube Kube
	// ProbeInterval is how often each switch is probed (250 ms).
	ProbeInterval time.Duration
	// Resync is how often every attachment is checked even when no switch
	// restart was seen (30 s): a restart quicker than a probe, or state
	// lost some other way.
	Resync time.Duration
	// RetryInterval is how soon a failed restore is tried again (1 s).
	RetryInterval time.Duration
	// OrphanGrace is how long a pod must be gone (and its attachment
	// recorded) before its attachment is torn down (2 min).
	OrphanGrace time.Duration
	// OrphanInterval is how often pods are listed (30 s).
	OrphanInterval time.Duration
	// Workers restore attachments of one switch in parallel (8).
	Workers int
	// RestoreTimeout bounds one attachment's restore, its lock included (20 s).
	RestoreTimeout time.Duration
	// Probe, when set, replaces the probes of the real switches (unit
	// tests): it returns the identity of the switch's current run.
	Probe func(ctx context.Context, engine, endpoint string) (identity string, err error)
}

// Agent is one node's agent.
type Agent struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu       sync.Mutex
	switches map[switchKey]*switchState
	// lost are the attachments found lost and not restored yet, with when
	// the loss was first seen.
	lost map[attKey]time.Time
	// missing are attachments whose pod was not listed, since when.
	missing    map[attKey]time.Time
	lastOrphan time.Time

	ready    atomic.Bool
	lastStep atomic.Int64
}

type attKey struct{ containerID, ifName string }

type switchState struct {
	key      switchKey
	prober   prober
	identity string
	up       bool
	// backAt is when the switch was seen back with a new identity: the
	// start of the restore time of what it lost.
	backAt time.Time
	dirty  bool
	// notReady: the last pass left only attachments the switch was not
	// ready for (ovs-vswitchd still initialising DPDK, say), which a
	// probe later may take: the next pass comes at the probes' pace.
	notReady bool
	lastPass time.Time
	// stopGuard stops the watcher of ovs-vswitchd's lock (OVS only).
	stopGuard func()
}

// New returns an agent.
func New(cfg Config) *Agent {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ProbeInterval, 250*time.Millisecond)
	def(&cfg.Resync, 30*time.Second)
	def(&cfg.RetryInterval, time.Second)
	def(&cfg.OrphanGrace, 2*time.Minute)
	def(&cfg.OrphanInterval, 30*time.Second)
	def(&cfg.RestoreTimeout, 20*time.Second)
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	return &Agent{cfg: cfg, log: cfg.Log, m: newMetrics(), switches: map[switchKey]*switchState{},
		lost: map[attKey]time.Time{}, missing: map[attKey]time.Time{}}
}

// Handler serves /metrics, /healthz (the agent's loop runs) and /readyz
// (it has been over every attachment once).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		// A step probes each switch within probeTimeout and restores with
		// RestoreTimeout: a loop quiet for longer than a few of those is stuck.
		limit := 3*a.cfg.RestoreTimeout + time.Minute
		if last := a.lastStep.Load(); last == 0 || time.Since(time.Unix(0, last)) < limit {
			fmt.Fprintln(w, "ok")
			return
		}
		http.Error(w, "the agent's loop has not run for "+limit.String(), http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if a.ready.Load() {
			fmt.Fprintln(w, "ok")
			return
		}
		http.Error(w, "not yet over every attachment once", http.StatusServiceUnavailable)
	})
	return mux
}

// Run watches and restores until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	defer func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, s := range a.switches {
			s.prober.close()
			if s.stopGuard != nil {
				s.stopGuard()
			}
		}
	}()
	a.lastStep.Store(time.Now().UnixNano())
	tick := time.NewTicker(a.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		a.Step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Step is one turn of the loop: read the records, probe each switch they
// name, go over the attachments of each switch that came back (or is due a
// resync, or has restores to retry), and collect orphans when due.
func (a *Agent) Step(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	defer a.lastStep.Store(time.Now().UnixNano())
	pol, err := a.cfg.Plugin.Policy()
	if err != nil {
		a.log.Error("cannot load the node policy", "error", err)
		a.m.errors.WithLabelValues("policy").Inc()
		return
	}
	store := state.New(pol.StateDir)
	records, err := store.List()
	if err != nil {
		// Each unreadable record is reported; the others are restored.
		for _, e := range unwrapJoined(err) {
			a.log.Error("skipping an unreadable attachment record", "error", e)
			a.m.errors.WithLabelValues("read_record").Inc()
		}
	}
	bySwitch := a.group(pol, records)
	allPassed := true
	for _, k := range sortedKeys(bySwitch) {
		if !a.serve(ctx, k, bySwitch[k]) {
			allPassed = false
		}
	}
	a.countStates(pol, records)
	if a.cfg.Kube != nil && time.Since(a.lastOrphan) >= a.cfg.OrphanInterval {
		a.lastOrphan = time.Now()
		a.collectOrphans(ctx, records)
	}
	if allPassed {
		a.ready.Store(true)
	}
}

// group sorts the records by switch; records whose configuration does not
// parse (a policy changed since ADD, say) name no switch and are left out.
func (a *Agent) group(pol *policy.Policy, records []*state.Record) map[switchKey][]*state.Record {
	out := map[switchKey][]*state.Record{}
	for _, r := range records {
		if !r.Restorable() {
			continue
		}
		eng, ep, err := plugin.Switch(pol, r)
		if err != nil {
			a.log.Warn("attachment record names no usable switch: not restored", "containerID", r.ContainerID, "ifName", r.IfName, "error", err)
			continue
		}
		k := switchKey{eng, ep}
		out[k] = append(out[k], r)
		if a.switches[k] == nil {
			s := &switchState{key: k, prober: funcProber{k, a.cfg.Probe}, dirty: true}
			if a.cfg.Probe == nil {
				s.prober = newProber(k, pol, a.log)
				if op, ok := s.prober.(*ovsProber); ok {
					s.stopGuard = op.guard(func() { a.removeDeadSockets(k) })
				}
			}
			a.switches[k] = s
		}
	}
	return out
}

// serve probes one switch and goes over its attachments when due; it
// reports whether the switch is up and its attachments were all seen to.
func (a *Agent) serve(ctx context.Context, k switchKey, records []*state.Record) bool {
	s := a.switches[k]
	id, err := s.prober.probe(ctx)
	if err != nil {
		if s.up || s.identity == "" && s.lastPass.IsZero() {
			a.log.Warn("switch not answering", "switch", k.String(), "error", err)
		}
		s.up = false
		a.m.switchUp.WithLabelValues(k.engine, k.endpoint).Set(0)
		return false
	}
	now := time.Now()
	// Only a new identity is a restart: a switch that did not answer a probe
	// (slow under load) and answers again as the same run lost nothing.
	if s.identity != "" && id != s.identity {
		a.log.Info("switch back", "switch", k.String(), "identity", id, "was", s.identity)
		a.m.switchBacks.WithLabelValues(k.engine, k.endpoint).Inc()
		s.backAt, s.dirty = now, true
	}
	s.identity, s.up = id, true
	a.m.switchUp.WithLabelValues(k.engine, k.endpoint).Set(1)
	due := s.dirty && now.Sub(s.lastPass) >= a.retryAfter(s) || now.Sub(s.lastPass) >= a.cfg.Resync
	if !due {
		return !s.dirty
	}
	s.lastPass = now
	clean, notReady := a.pass(ctx, s, records)
	s.notReady = notReady
	a.m.reconciles.Inc()
	a.m.lastReconcil.SetToCurrentTime()
	s.dirty = !clean
	if clean {
		s.backAt = time.Time{}
	}
	return clean
}

// retryAfter is how long a dirty switch waits between passes: none right
// after it came back, ProbeInterval (at most RetryInterval) after a pass
// the switch was not ready for, RetryInterval after one whose restores
// failed.
func (a *Agent) retryAfter(s *switchState) time.Duration {
	if !s.backAt.IsZero() && s.lastPass.Before(s.backAt) {
		return 0
	}
	if s.notReady {
		return min(a.cfg.ProbeInterval, a.cfg.RetryInterval)
	}
	return a.cfg.RetryInterval
}

// pass checks every attachment of a switch and restores those it lost,
// Workers at a time; it reports whether all of them are in place, and
// whether those that are not were all left because the switch was not ready.
func (a *Agent) pass(ctx context.Context, s *switchState, records []*state.Record) (clean, notReady bool) {
	type result struct {
		rec *state.Record
		res *plugin.RestoreResult
		err error
		at  time.Time
	}
	jobs := make(chan *state.Record)
	results := make(chan result)
	var wg sync.WaitGroup
	for range min(a.cfg.Workers, len(records)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range jobs {
				rctx, cancel := context.WithTimeout(ctx, a.cfg.RestoreTimeout)
				res, err := a.cfg.Plugin.Restore(rctx, a.log, r.ContainerID, r.IfName)
				cancel()
				results <- result{r, res, err, time.Now()}
			}
		}()
	}
	go func() {
		for _, r := range records {
			jobs <- r
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	clean, notReady = true, true
	for r := range results {
		k := attKey{r.rec.ContainerID, r.rec.IfName}
		if r.res != nil && r.res.Lost != nil {
			if _, seen := a.lost[k]; !seen {
				a.lost[k] = r.at
				a.event(ctx, r.rec, "Warning", ReasonLost, fmt.Sprintf("interface %s lost by switch %s: %v", r.rec.IfName, s.key, r.res.Lost))
			}
		}
		switch {
		case r.err != nil && errors.Is(r.err, engine.ErrUnavailable):
			// The switch is not ready for it yet (ovs-vswitchd starting, say).
			clean = false
			a.log.Debug("switch not ready to restore an attachment; will retry", "containerID", k.containerID, "ifName", k.ifName, "error", r.err)
		case r.err != nil:
			clean, notReady = false, false
			a.m.restores.WithLabelValues(s.key.engine, "failed").Inc()
			a.m.errors.WithLabelValues("restore").Inc()
			a.log.Error("restoring an attachment failed; will retry", "containerID", k.containerID, "ifName", k.ifName, "error", r.err)
		case r.res.Outcome == plugin.Restored:
			a.restored(ctx, s, r.rec, k, r.at)
		case r.res.Outcome == plugin.Intact && !a.lost[k].IsZero():
			// Found lost before, intact now: a restore that timed out
			// (a switch executing requests late) completed after all.
			a.restored(ctx, s, r.rec, k, r.at)
		default:
			delete(a.lost, k) // intact, or no longer to be restored
		}
	}
	return clean, !clean && notReady
}

// removeDeadSockets removes the sockets a killed ovs-vswitchd left in its
// run directory for the server-mode attachments on switch k (see
// ovsdb.WatchVswitchd), those of attachments being deleted included. It runs
// while the watcher holds ovs-vswitchd's lock, which a restarted
// ovs-vswitchd waits for, so it takes none of the agent's locks (a pass may
// hold them for long) and reads the records itself.
func (a *Agent) removeDeadSockets(k switchKey) {
	pol, err := a.cfg.Plugin.Policy()
	if err != nil {
		a.log.Error("cannot load the node policy", "error", err)
		return
	}
	records, _ := state.New(pol.StateDir).List() // unreadable ones are reported by Step
	for _, r := range records {
		if r.Engine != netconf.EngineOVSDPDK || len(r.EngineData) == 0 || len(r.NetConf) == 0 {
			continue
		}
		if eng, ep, err := plugin.Switch(pol, r); err != nil || (switchKey{eng, ep}) != k {
			continue
		}
		path, err := ovsdb.RemoveDeadServerSocket(r.EngineData)
		switch {
		case err != nil:
			a.m.errors.WithLabelValues("dead_socket").Inc()
			a.log.Warn("could not remove the socket a stopped ovs-vswitchd left", "containerID", r.ContainerID, "ifName", r.IfName, "error", err)
		case path != "":
			a.log.Info("removed the socket a killed ovs-vswitchd left, before a restarted one creates its port", "containerID", r.ContainerID, "ifName", r.IfName, "socket", path)
		}
	}
}

// restored counts an attachment found lost as back and tells its pod.
func (a *Agent) restored(ctx context.Context, s *switchState, rec *state.Record, k attKey, at time.Time) {
	since := s.backAt
	if lostAt := a.lost[k]; since.IsZero() || (!lostAt.IsZero() && lostAt.Before(since)) {
		since = lostAt
	}
	a.m.restores.WithLabelValues(s.key.engine, "restored").Inc()
	if !since.IsZero() {
		a.m.restoreTime.WithLabelValues(s.key.engine).Observe(at.Sub(since).Seconds())
	}
	delete(a.lost, k)
	a.event(ctx, rec, "Normal", ReasonRestored, fmt.Sprintf("interface %s restored on switch %s (same socket %s)", rec.IfName, s.key, rec.Layout.SocketPath()))
}

// event records an Event on the attachment's pod, when the agent has the
// API and the record names the pod.
func (a *Agent) event(ctx context.Context, r *state.Record, typ, reason, msg string) {
	if a.cfg.Kube == nil || r.PodName == "" || r.PodNamespace == "" {
		return
	}
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.cfg.Kube.Event(ectx, PodRef{r.PodNamespace, r.PodName, r.PodUID}, typ, reason, msg); err != nil {
		a.m.errors.WithLabelValues("event").Inc()
		a.log.Warn("could not record an event on the pod", "pod", r.PodNamespace+"/"+r.PodName, "reason", reason, "error", err)
	}
}

// countStates sets the attachments gauge.
func (a *Agent) countStates(pol *policy.Policy, records []*state.Record) {
	a.m.attachments.Reset()
	for _, r := range records {
		st := stateOK
		switch {
		case r.Incomplete:
			st = stateIncomplete
		case r.Deleting:
			st = stateDeleting
		case !r.Restorable():
			st = stateUnrestorable
		default:
			if _, lost := a.lost[attKey{r.ContainerID, r.IfName}]; lost {
				st = stateLost
			}
		}
		a.m.attachments.WithLabelValues(r.Engine, st).Inc()
	}
}

// collectOrphans tears down, as DEL does (IPAM included), attachments
// whose pod has been gone for the grace period. Only records that name a
// pod are considered; a pod that cannot be listed is never taken as gone.
func (a *Agent) collectOrphans(ctx context.Context, records []*state.Record) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	pods, err := a.cfg.Kube.Pods(lctx)
	cancel()
	if err != nil {
		a.m.errors.WithLabelValues("list_pods").Inc()
		a.log.Warn("cannot list this node's pods: no orphan is collected", "error", err)
		return
	}
	now := time.Now()
	seen := map[attKey]bool{}
	for _, r := range records {
		if r.PodName == "" || r.PodNamespace == "" || r.Incomplete {
			continue
		}
		k := attKey{r.ContainerID, r.IfName}
		seen[k] = true
		uid, ok := pods[r.PodNamespace+"/"+r.PodName]
		if ok && (r.PodUID == "" || uid == r.PodUID) {
			delete(a.missing, k)
			continue
		}
		since, ok := a.missing[k]
		if !ok {
			a.missing[k] = now
			continue
		}
		if now.Sub(since) < a.cfg.OrphanGrace || now.Sub(r.Created) < a.cfg.OrphanGrace {
			continue
		}
		a.log.Info("collecting an orphan: its pod is gone", "pod", r.PodNamespace+"/"+r.PodName, "containerID", r.ContainerID, "ifName", r.IfName)
		if err := a.cfg.Plugin.Teardown(r); err != nil {
			a.m.errors.WithLabelValues("orphan").Inc()
			a.log.Error("collecting an orphan failed; will retry", "containerID", r.ContainerID, "ifName", r.IfName, "error", err)
			continue
		}
		delete(a.missing, k)
		delete(a.lost, k)
		a.m.orphans.WithLabelValues(r.Engine).Inc()
	}
	for k := range a.missing {
		if !seen[k] {
			delete(a.missing, k)
		}
	}
}

func unwrapJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func sortedKeys(m map[switchKey][]*state.Record) []switchKey {
	out := make([]switchKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
