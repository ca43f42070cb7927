package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/throttle"
)

// LoginThrottle throttles failed password logins (Basic auth, or a
// websocket's ?token=user:password) per source address and per user
// name: 429 with Retry-After once either has used up its burst. Tokens are
// not throttled: they are not guessable.
type LoginThrottle struct {
	t     *throttle.Throttle
	hint  string
	count *prometheus.CounterVec
}

// NewLoginThrottle wraps t; hint names the settings in the 429 message
// (e.g. the flags), reg receives provision_logins_throttled_total{by}.
func NewLoginThrottle(t *throttle.Throttle, hint string, reg prometheus.Registerer) *LoginThrottle {
	l := &LoginThrottle{t: t, hint: hint, count: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "provision_logins_throttled_total",
		Help: "Password logins refused with 429 because of earlier failures, by the key that was throttled (ip or user).",
	}, []string{"by"})}
	if reg != nil {
		reg.MustRegister(l.count)
	}
	return l
}

// passwordUser returns the user name of a password login, if r is one.
func passwordUser(r *http.Request, allowQuery bool) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, _, _ := strings.Cut(h, " "); !strings.EqualFold(scheme, "basic") {
			return "", false
		}
		// Malformed Basic credentials count as a failed login too (with an
		// empty user name).
		name, _, _ := r.BasicAuth()
		return name, true
	}
	if allowQuery {
		tok := r.URL.Query().Get("token")
		if tok == "" {
			tok = r.URL.Query().Get("Token")
		}
		if name, _, ok := strings.Cut(tok, ":"); ok {
			return name, true
		}
	}
	return "", false
}

// take reserves a login attempt for the request's address and user; when
// throttled it answers 429 and returns false. The keys returned must be
// refunded when the credentials turn out right.
func (l *LoginThrottle) take(c *gin.Context, user string) ([]string, bool) {
	ip := c.RemoteIP()
	keys := []string{"ip:" + ip, "user:" + user}
	blocked, wait := l.t.Take(keys...)
	if blocked == "" {
		return keys, true
	}
	by, who := "ip", "from "+ip
	if blocked != keys[0] {
		by, who = "user", "for user "+strconv.Quote(user)
	}
	l.count.WithLabelValues(by).Inc()
	secs := int(math.Ceil(wait.Seconds()))
	c.Header("Retry-After", strconv.Itoa(secs))
	WriteError(c, &models.Error{Type: "AUTH", Key: c.Request.URL.Path, Code: http.StatusTooManyRequests,
		Messages: []string{fmt.Sprintf("Too many failed logins %s: retry in %d s (limit %d per %s; %s)",
			who, secs, l.t.Burst(), l.t.Window(), l.hint)}})
	return nil, false
}

func (l *LoginThrottle) refund(keys []string) { l.t.Refund(keys...) }
