package slackplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"text/template"
	"time"

	"github.com/provisionhq/provision/models"
)

// MaxTextBytes bounds a rendered message: Slack truncates text beyond 40000
// characters, and the bound also stops a runaway template from using
// unbounded memory.
const MaxTextBytes = 40000

// TemplateData is what slack/template is executed with.
type TemplateData struct {
	// Type is the event type (object prefix), e.g. "machines".
	Type string
	// Action is the event action, e.g. "create".
	Action string
	// Key is the object key.
	Key string
	// Principal is who caused the event.
	Principal string
	// Name is the object's Name field when it has one, else "".
	Name string
	// Time is when the event happened.
	Time time.Time
	// Object is the event object as decoded JSON.
	Object any
	// Event is the whole event.
	Event *models.Event
}

// errTooLong is returned by limitedBuffer once MaxTextBytes is exceeded.
var errTooLong = errors.New("rendered text longer than 40000 bytes")

// limitedBuffer is a bytes.Buffer that refuses to grow past MaxTextBytes,
// so a template cannot render an unbounded message.
type limitedBuffer struct{ bytes.Buffer }

// Write implements io.Writer, failing with errTooLong past the limit.
func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxTextBytes {
		return 0, errTooLong
	}
	return b.Buffer.Write(p)
}

// ParseTemplate compiles a message template with the json helper.
func ParseTemplate(text string) (*template.Template, error) {
	t, err := template.New(ParamTemplate).Option("missingkey=zero").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			buf, err := json.MarshalIndent(v, "", "  ")
			return string(buf), err
		},
	}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", ParamTemplate, err)
	}
	return t, nil
}

// NewTemplateData extracts the template fields from an event.
func NewTemplateData(e *models.Event) TemplateData {
	d := TemplateData{Type: e.Type, Action: e.Action, Key: e.Key, Principal: e.Principal, Time: e.Time, Object: e.Object, Event: e}
	switch o := e.Object.(type) {
	case map[string]any:
		if n, ok := o["Name"].(string); ok {
			d.Name = n
		}
	case nil:
	default:
		var named struct{ Name string }
		if models.Remarshal(o, &named) == nil {
			d.Name = named.Name
		}
	}
	return d
}

// Render executes t for e, bounded to MaxTextBytes.
func Render(t *template.Template, e *models.Event) (string, error) {
	var buf limitedBuffer
	if err := t.Execute(&buf, NewTemplateData(e)); err != nil {
		return "", fmt.Errorf("render %s for %s.%s.%s: %w", ParamTemplate, e.Type, e.Action, e.Key, err)
	}
	return buf.String(), nil
}
