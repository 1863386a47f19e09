package observe

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ComponentKafka is the readiness component of the Kafka cluster.
const ComponentKafka = "kafka"

// Health is the readiness registry of a process: each component (Kafka,
// every running source and pipeline) is ready or not, with a reason. The
// process is ready when every component is. Safe for concurrent use.
type Health struct {
	mu         sync.Mutex
	components map[string]error
}

// NewHealth returns a registry with no components (ready).
func NewHealth() *Health { return &Health{components: map[string]error{}} }

// Set records a component's state: ready when err is nil, otherwise not
// ready because of err.
func (h *Health) Set(component string, err error) {
	h.mu.Lock()
	h.components[component] = err
	h.mu.Unlock()
}

// Remove forgets a component (a source or pipeline that was stopped).
func (h *Health) Remove(component string) {
	h.mu.Lock()
	delete(h.components, component)
	h.mu.Unlock()
}

// has reports whether component is known (ready or not).
func (h *Health) has(component string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.components[component]
	return ok
}

// Ready returns nil when every component is ready, otherwise an error
// naming each one that is not, with its reason, one per line in name
// order.
func (h *Health) Ready() error { return joinReasons(h.reasons()) }

// reasons returns why each component that is not ready is not.
func (h *Health) reasons() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := map[string]string{}
	for c, err := range h.components {
		if err != nil {
			r[c] = err.Error()
		}
	}
	return r
}

// joinReasons makes one "component: reason" line per entry, sorted; nil
// when there is none.
func joinReasons(reasons map[string]string) error {
	if len(reasons) == 0 {
		return nil
	}
	lines := make([]string, 0, len(reasons))
	for c, why := range reasons {
		lines = append(lines, c+": "+oneLine(why))
	}
	slices.Sort(lines)
	return errors.New(strings.Join(lines, "\n"))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Handler serves /metrics (the Prometheus text format), /healthz (200
// while the process serves HTTP at all) and /readyz (200 when Kafka is
// reachable and every running source and pipeline is connected, otherwise
// 503 with the reasons in the body). The control plane mounts the same
// handlers through MetricsHandler, LiveHandler and ReadyHandler.
func Handler(m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", MetricsHandler(m))
	mux.Handle("GET /healthz", LiveHandler())
	mux.Handle("GET /readyz", ReadyHandler(m))
	return mux
}

// MetricsHandler serves the metrics in the Prometheus exposition formats.
func MetricsHandler(m *Metrics) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// LiveHandler answers 200 "ok": the process is alive.
func LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
}

// Readiness says whether a process is ready, and if not, why. Metrics and
// Health implement it.
type Readiness interface {
	Ready() error
}

// ReadyHandler answers 200 "ready" when h is ready, otherwise 503 with
// "not ready" and one line per component that is not.
func ReadyHandler(h Readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := h.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready\n%s\n", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
}
