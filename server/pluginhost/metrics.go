package pluginhost

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the per-plugin Prometheus series, labelled by plugin name.
type metrics struct {
	actions   *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	restarts  *prometheus.CounterVec
	published *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	logDrops  *prometheus.CounterVec
	upGauge   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provision_plugin_actions_total",
			Help: "Plugin actions invoked, by plugin and result (ok or error).",
		}, []string{"plugin", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "provision_plugin_action_duration_seconds",
			Help:    "Time from dispatch to the plugin's answer for plugin actions.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}, []string{"plugin"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provision_plugin_restarts_total",
			Help: "Restarts of plugin processes after a crash, hang or failed start.",
		}, []string{"plugin"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provision_plugin_publish_total",
			Help: "Events delivered to HasPublish plugins, by result (ok or error).",
		}, []string{"plugin", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provision_plugin_publish_dropped_total",
			Help: "Events dropped because a HasPublish plugin's queue was full.",
		}, []string{"plugin"}),
		logDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provision_plugin_log_dropped_total",
			Help: "Log lines (stdout, stderr, POST /log) of a running plugin dropped because it logged faster than its budget.",
		}, []string{"plugin"}),
		upGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "provision_plugin_up",
			Help: "1 when the plugin's process is configured and serving.",
		}, []string{"plugin"}),
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{m.actions, m.latency, m.restarts, m.published, m.dropped, m.logDrops, m.upGauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pluginhost: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) action(plugin string, d time.Duration, ok bool) {
	res := "ok"
	if !ok {
		res = "error"
	}
	m.actions.WithLabelValues(plugin, res).Inc()
	m.latency.WithLabelValues(plugin).Observe(d.Seconds())
}

func (m *metrics) logDropped(plugin string) { m.logDrops.WithLabelValues(plugin).Inc() }

func (m *metrics) restart(plugin string) { m.restarts.WithLabelValues(plugin).Inc() }

func (m *metrics) publish(plugin string, ok bool) {
	res := "ok"
	if !ok {
		res = "error"
	}
	m.published.WithLabelValues(plugin, res).Inc()
}

func (m *metrics) drop(plugin string, n uint64) {
	if n > 0 {
		m.dropped.WithLabelValues(plugin).Add(float64(n))
	}
}

// up sets the plugin's up gauge. The first time it runs the plugin's
// other series are created at zero as well: a counter that appears only at
// its first increment makes rate() and increase() miss that increment and
// alerts on absent series fire for healthy plugins.
func (m *metrics) up(plugin string, up bool) {
	v := 0.0
	if up {
		v = 1
		for _, res := range []string{"ok", "error"} {
			m.actions.WithLabelValues(plugin, res)
			m.published.WithLabelValues(plugin, res)
		}
		m.latency.WithLabelValues(plugin)
		m.restarts.WithLabelValues(plugin)
		m.dropped.WithLabelValues(plugin)
	}
	m.upGauge.WithLabelValues(plugin).Set(v)
}

// forget drops a deleted plugin's series.
func (m *metrics) forget(plugin string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.actions, m.latency, m.restarts, m.published, m.dropped, m.logDrops, m.upGauge} {
		v.DeletePartialMatch(prometheus.Labels{"plugin": plugin})
	}
}
