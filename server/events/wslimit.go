package events

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/provisionhq/provision/models"
)

// WSLimits caps open websockets. Zero fields do not limit.
type WSLimits struct {
	// PerPrincipal caps the open websockets of one principal (429 beyond).
	PerPrincipal int
	// Total caps open websockets (503 beyond); the last Reserve of them
	// only superusers may open.
	Total int
	// Reserve is the part of Total kept for superusers.
	Reserve int
	// PerPrincipalHint and TotalHint say in refusals how the limits are
	// set (e.g. "--ws-max-per-principal / RS_WS_MAX_PER_PRINCIPAL").
	PerPrincipalHint, TotalHint string
	// Metrics receives provision_websockets_refused_total{reason}.
	Metrics prometheus.Registerer
}

// wsAdmission counts open websockets against WSLimits.
type wsAdmission struct {
	lim     WSLimits
	refused *prometheus.CounterVec

	mu    sync.Mutex
	total int
	per   map[string]int
}

func newWSAdmission(lim WSLimits) *wsAdmission {
	a := &wsAdmission{lim: lim, per: map[string]int{}, refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "provision_websockets_refused_total",
		Help: "Websocket upgrades refused by a websocket cap, by reason (per_principal, total, reserve).",
	}, []string{"reason"})}
	if lim.Metrics != nil {
		lim.Metrics.MustRegister(a.refused)
	}
	return a
}

// admit takes a slot for principal or returns the refusal to answer.
// Superusers are held to PerPrincipal too but may use the reserve.
func (a *wsAdmission) admit(principal string, superuser bool) (release func(), refusal *models.Error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.lim
	switch {
	case l.PerPrincipal > 0 && a.per[principal] >= l.PerPrincipal:
		a.refused.WithLabelValues("per_principal").Inc()
		return nil, models.NewError("LIMIT", http.StatusTooManyRequests,
			"Too many websockets for %s: limit %d open per principal (%s); close some first", principal, l.PerPrincipal, l.PerPrincipalHint)
	case l.Total > 0 && a.total >= l.Total:
		a.refused.WithLabelValues("total").Inc()
		return nil, models.NewError("LIMIT", http.StatusServiceUnavailable,
			"Too many websockets on this server: limit %d open (%s); retry later", l.Total, l.TotalHint)
	case l.Total > 0 && !superuser && a.total >= l.Total-l.Reserve:
		a.refused.WithLabelValues("reserve").Inc()
		return nil, models.NewError("LIMIT", http.StatusServiceUnavailable,
			"Too many websockets on this server: limit %d open, the last %d reserved for superusers (%s); retry later", l.Total, l.Reserve, l.TotalHint)
	}
	a.total++
	a.per[principal]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.total--
			if a.per[principal]--; a.per[principal] <= 0 {
				delete(a.per, principal)
			}
		})
	}, nil
}
