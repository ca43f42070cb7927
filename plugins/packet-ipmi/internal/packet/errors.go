package packet

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/pluginutil"
	"github.com/provisionhq/provision/plugins/packet-ipmi/internal/metal"
)

// errNotReady is returned when a new device missed its deadline.
var errNotReady = errors.New("device is still not active after timeout")

// codeFor picks the HTTP status answered for a failed call:
//
//   - a Metal API 404 stays 404 (packet/uuid names no device);
//   - a Metal API call that ran out of time, or a device that missed its
//     creation deadline, is 504;
//   - any other Metal API failure is 502 (the upstream API failed; DRP
//     answered 409 or 400 here);
//   - a provision API failure keeps the status provision answered;
//   - anything else is 500.
func codeFor(err error) int {
	var ae *metal.APIError
	var me *models.Error
	switch {
	case errors.Is(err, errNotReady):
		return http.StatusGatewayTimeout
	case errors.As(err, &ae):
		switch {
		case ae.Status == http.StatusNotFound:
			return http.StatusNotFound
		case ae.Timeout:
			return http.StatusGatewayTimeout
		}
		return http.StatusBadGateway
	case errors.As(err, &me) && me.Code >= 400 && me.Code <= 599:
		return me.Code
	}
	return http.StatusInternalServerError
}

// failed is the error of a command: "Command failed: <cmd>: <err>" with the
// status chosen by codeFor.
func failed(key, cmd string, err error) *models.Error {
	return pluginutil.MakeError(key, codeFor(err), "Command failed: %s: %s", cmd, err)
}

// badRequest is a 400 in the plugin error shape.
func badRequest(key, format string, args ...any) *models.Error {
	return pluginutil.MakeError(key, http.StatusBadRequest, "%s", fmt.Sprintf(format, args...))
}
