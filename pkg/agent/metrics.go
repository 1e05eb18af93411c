package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are what the agent exports on /metrics. Each agent has its own
// registry: no global state, and tests can read them.
type metrics struct {
	reg          *prometheus.Registry
	attachments  *prometheus.GaugeVec
	restores     *prometheus.CounterVec
	restoreTime  *prometheus.HistogramVec
	switchUp     *prometheus.GaugeVec
	switchBacks  *prometheus.CounterVec
	orphans      *prometheus.CounterVec
	errors       *prometheus.CounterVec
	podAPI       *prometheus.CounterVec
	reconciles   prometheus.Counter
	lastReconcil prometheus.Gauge
}

// Attachment states, as the attachments gauge labels them.
const (
	stateOK           = "ok"
	stateLost         = "lost"
	stateIncomplete   = "incomplete"
	stateDeleting     = "deleting"
	stateUnrestorable = "unrestorable"
)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		attachments: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "userspace_cni_attachments",
			Help: "Attachments recorded on this node, by engine and state (ok, lost, incomplete, deleting, unrestorable).",
		}, []string{"engine", "state"}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userspace_cni_restores_total",
			Help: "Attachments found lost by their switch, by engine and result (restored, failed).",
		}, []string{"engine", "result"}),
		restoreTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "userspace_cni_restore_duration_seconds",
			Help:    "Time from the switch answering again (or the loss being seen) to the attachment restored.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"engine"}),
		switchUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "userspace_cni_switch_up",
			Help: "1 when the switch answers and can take attachments, 0 otherwise.",
		}, []string{"engine", "endpoint"}),
		switchBacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userspace_cni_switch_restarts_total",
			Help: "Times the switch was seen back after a restart, a lost connection or a new database.",
		}, []string{"engine", "endpoint"}),
		orphans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userspace_cni_orphans_collected_total",
			Help: "Attachments torn down because their pod no longer exists.",
		}, []string{"engine"}),
		podAPI: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userspace_cni_podapi_sessions_total",
			Help: "Plugin sessions on the pod API socket, by result (served; refused: not root, or too many at once; unserved: a request for a kubeconfig the agent does not serve, which the plugin then sends to its helper).",
		}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userspace_cni_agent_errors_total",
			Help: "Errors of the agent, by operation (read_record, restore, probe, orphan, event, list_pods, dead_socket).",
		}, []string{"op"}),
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "userspace_cni_reconciles_total",
			Help: "Passes over the attachments of a switch.",
		}),
		lastReconcil: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "userspace_cni_last_reconcile_timestamp_seconds",
			Help: "When the last pass over the attachments ended.",
		}),
	}
	m.reg.MustRegister(m.podAPI, m.attachments, m.restores, m.restoreTime, m.switchUp, m.switchBacks, m.orphans, m.errors,
		m.reconciles, m.lastReconcil, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
