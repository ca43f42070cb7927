package pluginutil

import (
	"errors"
	"fmt"

	"github.com/provisionhq/provision/models"
)

// ErrorType is the Type of every error a plugin builds with MakeError, as
// DRP's utils.MakeError uses.
const ErrorType = "rpc"

// MakeError returns DRP's plugin error shape {Model:"plugin", Key:key,
// Type:"rpc", Code:code, Messages:[msg]}. key is the plugin (or instance)
// name. A code that is not a valid HTTP status is answered as 500, because
// a zero code makes DRP's mux panic.
func MakeError(key string, code int, format string, args ...any) *models.Error {
	if code < 100 || code > 599 {
		code = 500
	}
	e := &models.Error{Model: "plugin", Key: key, Type: ErrorType, Code: code}
	e.Errorf(format, args...)
	return e
}

// ConvertError turns err into a plugin error with the given code. A nil err
// gives nil; a *models.Error (also when wrapped) keeps its messages but gets
// code; any other error becomes MakeError(key, code, "Err: "+err).
func ConvertError(key string, code int, err error) *models.Error {
	if err == nil {
		return nil
	}
	var me *models.Error
	if errors.As(err, &me) && me != nil {
		out := *me
		out.Messages = append([]string(nil), me.Messages...)
		out.Code = code
		return &out
	}
	return MakeError(key, code, "%s", fmt.Sprintf("Err: %v", err))
}
