package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

// TestTimeoutRules: the global request time limit applies unless a
// timeout rule recognises the request; a rule may set a longer limit or
// none at all (the handler then only ends with the client).
func TestTimeoutRules(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.RequestTimeout = time.Minute }})
	a := ts.Server.API()
	a.HandleSub("*", "deadline", http.MethodGet, func(c *gin.Context) {
		d, ok := c.Request.Context().Deadline()
		if !ok {
			c.JSON(http.StatusOK, "none")
			return
		}
		c.JSON(http.StatusOK, time.Until(d).Round(time.Minute).String())
	})
	a.AddTimeoutRule(func(r *http.Request) (time.Duration, bool) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/deadline/long"):
			return 2 * time.Hour, true
		case strings.HasSuffix(r.URL.Path, "/deadline/none"):
			return 0, true
		}
		return 0, false
	})
	for sub, want := range map[string]string{"": `"1m0s"`, "/long": `"2h0m0s"`, "/none": `"none"`} {
		resp, body := ts.Do(t, "GET", "/api/v3/profiles/global/deadline"+sub, nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != want {
			t.Errorf("deadline%s: %d %s, want %s", sub, resp.StatusCode, body, want)
		}
	}
}
