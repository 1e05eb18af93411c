// Command userspace-agent is the node agent of the userspace CNI plugin:
// it restores attachments after a switch restart, collects attachments
// whose pod is gone, records pod Events and serves /healthz, /readyz and
// /metrics. It reads the node policy the plugin reads
// (USERSPACE_CNI_POLICY, else /etc/cni/userspace/policy.json).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/userspace-cni/userspace/pkg/agent"
	"github.com/userspace-cni/userspace/pkg/plugin"
	"github.com/userspace-cni/userspace/pkg/podapi"
	"github.com/userspace-cni/userspace/pkg/state"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "userspace-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", ":9731", "address of /healthz, /readyz and /metrics")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (default: in-cluster); \"none\" runs without the Kubernetes API (no orphan collection, no events)")
	node := flag.String("node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	probe := flag.Duration("probe-interval", 250*time.Millisecond, "how often each switch is probed")
	resync := flag.Duration("resync", 30*time.Second, "how often every attachment is checked without a switch restart seen")
	grace := flag.Duration("orphan-grace", 2*time.Minute, "how long a pod must be gone before its attachments are torn down")
	orphanEvery := flag.Duration("orphan-interval", 30*time.Second, "how often this node's pods are listed")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	podAPI := flag.Bool("pod-api", true, "answer the plugin's Kubernetes requests on the socket "+podapi.AgentSocket+" in its state directory (without it, each plugin call with a kubeconfig runs userspace-kube)")
	flag.Parse()

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("invalid -log-level %q", *level)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	cfg := agent.Config{Plugin: plugin.New(), Log: log, ProbeInterval: *probe, Resync: *resync,
		OrphanGrace: *grace, OrphanInterval: *orphanEvery}
	pol, err := cfg.Plugin.Policy()
	if err != nil {
		return fmt.Errorf("node policy: %w", err)
	}
	// The DaemonSet's hostPath volume creates the state directory 0755
	// when the plugin has not run yet; the plugin makes it 0700.
	if err := state.New(pol.StateDir).Secure(); err != nil {
		return err
	}
	if *kubeconfig != "none" {
		k, err := agent.NewKubeClient(*kubeconfig, *node)
		if err != nil {
			return err
		}
		cfg.Kube = k
	}
	a := agent.New(cfg)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server", "error", err)
			stop()
		}
	}()
	podAPIDone := make(chan error, 1)
	if *podAPI {
		// Without the socket the plugin runs its helper: worth a log line,
		// not worth stopping the restores for.
		if pln, err := agent.Listen(podapi.AgentSocketIn(pol.StateDir)); err != nil {
			log.Error("no pod API; plugin calls run their helper", "error", err)
			podAPIDone <- nil
		} else {
			go func() {
				err := a.PodAPI(pol).Serve(ctx, pln)
				if err != nil {
					log.Error("pod API stopped; plugin calls run their helper", "error", err)
				}
				podAPIDone <- err
			}()
		}
	} else {
		podAPIDone <- nil
	}
	log.Info("agent started", "listen", ln.Addr().String(), "node", *node, "pod-api", *podAPI)
	err = a.Run(ctx)
	stop()
	err = errors.Join(err, <-podAPIDone)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, srv.Shutdown(sctx))
}
