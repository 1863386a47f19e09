package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/sluice-cdc/sluice/observe"
)

// componentControl is the readiness component of the control plane: not
// ready until it has loaded its state from Kafka and applied the spec
// files, so /readyz never answers 200 before the units exist.
const componentControl = "control"

// mountObserve serves /metrics, /healthz and /readyz on mux and returns
// the metrics the worker reports to. Once ctx ends (SIGTERM) the process
// reports not ready while it shuts down.
func mountObserve(ctx context.Context, mux *http.ServeMux) *observe.Metrics {
	m := observe.New(version)
	m.Health().Set(componentControl, errors.New("starting: waiting for Kafka"))
	mux.Handle("GET /metrics", observe.MetricsHandler(m))
	mux.Handle("GET /healthz", observe.LiveHandler())
	mux.Handle("GET /readyz", observe.ReadyHandler(m))
	context.AfterFunc(ctx, func() { m.Health().Set("server", errors.New("shutting down")) })
	return m
}
