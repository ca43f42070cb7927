package drpcompat

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/provisionhq/provision/models"
)

// receivedEvent mirrors api.RecievedEvent.
type receivedEvent struct {
	E   models.Event
	Err error
}

// eventStream mirrors api.EventStream (api/event_stream.go): one
// websocket; an internal handle pre-subscribed (client side only) to
// "websocket.*.*" whose channel receives the server's acknowledgements;
// filters reference-counted across handles so the server sees one
// "register <filter>" per distinct filter; after sending N registers (or
// deregisters) the caller blocks until N acknowledgement events arrive.
type eventStream struct {
	t             testing.TB
	client        *drpClient
	conn          *websocket.Conn
	mu            sync.Mutex
	handleID      int64
	subscriptions map[string][]int64
	receivers     map[int64]chan receivedEvent
	rchan         chan receivedEvent
	done          chan struct{}

	// sent records every text frame written, for assertions.
	sent []string
}

// dialURL mirrors Client.ws: UrlFor("ws") with the scheme forced to wss.
func (c *drpClient) dialURL() string {
	u := c.req().urlFor("ws").uri
	u.Scheme = "wss"
	return u.String()
}

// events mirrors Client.Events: dial with gorilla's Dialer (as DRP does)
// and an Authorization header (Bearer token, or Basic when the client has
// none), then start the reader.
func (c *drpClient) events() (*eventStream, error) {
	d := &websocket.Dialer{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // as DRP's client
		HandshakeTimeout: 30 * time.Second}
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	} else {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.username+":"+c.password)))
	}
	conn, resp, err := d.Dial(c.dialURL(), h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, fmt.Errorf("dial %s: %w (status %d)", c.dialURL(), err, status)
	}
	es := &eventStream{t: c.t, client: c, conn: conn, subscriptions: map[string][]int64{},
		receivers: map[int64]chan receivedEvent{}, done: make(chan struct{})}
	es.handleID++
	es.rchan = make(chan receivedEvent, 100)
	es.subscriptions["websocket.*.*"] = []int64{es.handleID}
	es.receivers[es.handleID] = es.rchan
	go es.processEvents()
	return es, nil
}

// matches mirrors RecievedEvent.matches: the registration split on its
// first two dots, each part equal or "*".
func (r *receivedEvent) matches(reg string) bool {
	tak := strings.SplitN(reg, ".", 3)
	if len(tak) != 3 {
		return false
	}
	return (tak[0] == r.E.Type || tak[0] == "*") && (tak[1] == r.E.Action || tak[1] == "*") && (tak[2] == r.E.Key || tak[2] == "*")
}

func (es *eventStream) processEvents() {
	defer close(es.done)
	for {
		_, msg, err := es.conn.ReadMessage()
		if err != nil {
			es.conn.Close()
			es.mu.Lock()
			for h, rc := range es.receivers {
				if rc != nil {
					select {
					case rc <- receivedEvent{Err: err}:
					default:
					}
					close(rc)
					es.receivers[h] = nil
				}
			}
			es.mu.Unlock()
			return
		}
		evt := receivedEvent{}
		evt.Err = json.Unmarshal(msg, &evt.E)
		to := map[int64]chan receivedEvent{}
		es.mu.Lock()
		for reg, handles := range es.subscriptions {
			if !evt.matches(reg) {
				continue
			}
			for _, h := range handles {
				to[h] = es.receivers[h]
			}
		}
		for _, ch := range to {
			if ch == nil {
				continue
			}
			select {
			case ch <- evt:
			default:
				es.t.Errorf("event stream: handle buffer full, event dropped (as DRP would): %s.%s.%s", evt.E.Type, evt.E.Action, evt.E.Key)
			}
		}
		es.mu.Unlock()
	}
}

// write sends one text frame and records it.
func (es *eventStream) write(s string) error {
	es.sent = append(es.sent, s)
	return es.conn.WriteMessage(websocket.TextMessage, []byte(s))
}

// subscribe mirrors EventStream.subscribe (called with mu held).
func (es *eventStream) subscribe(handle int64, events ...string) (int, error) {
	count := 0
	for _, evt := range events {
		handles := es.subscriptions[evt]
		idx := sort.Search(len(handles), func(i int) bool { return handles[i] >= handle })
		if idx < len(handles) && handles[idx] == handle {
			continue
		}
		handles = append(handles, 0)
		copy(handles[idx+1:], handles[idx:])
		handles[idx] = handle
		if es.subscriptions[evt] == nil {
			if err := es.write("register " + evt); err != nil {
				return count, err
			}
			count++
		}
		es.subscriptions[evt] = handles
	}
	return count, nil
}

// waitAcks blocks, like DRP's client, until n events arrive on the
// internal "websocket.*.*" handle; unlike DRP it gives up after a deadline
// so a missing acknowledgement fails the test instead of hanging it.
func (es *eventStream) waitAcks(n int) ([]models.Event, error) {
	var got []models.Event
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for i := 0; i < n; i++ {
		select {
		case ev, ok := <-es.rchan:
			if !ok || ev.Err != nil {
				return got, fmt.Errorf("stream ended while waiting for acknowledgement %d/%d: %v", i+1, n, ev.Err)
			}
			got = append(got, ev.E)
		case <-deadline.C:
			return got, fmt.Errorf("DRP's client would block forever: %d of %d acknowledgements (events of Type \"websocket\") arrived", i, n)
		}
	}
	return got, nil
}

// register mirrors EventStream.Register; it also returns the
// acknowledgements it consumed.
func (es *eventStream) register(events ...string) (int64, <-chan receivedEvent, []models.Event, error) {
	es.mu.Lock()
	es.handleID++
	id := es.handleID
	ch := make(chan receivedEvent, 100)
	es.receivers[id] = ch
	count, err := es.subscribe(id, events...)
	es.mu.Unlock()
	if err != nil {
		return id, ch, nil, err
	}
	acks, err := es.waitAcks(count)
	return id, ch, acks, err
}

// deregister mirrors EventStream.Deregister.
func (es *eventStream) deregister(handle int64) ([]models.Event, error) {
	es.mu.Lock()
	ch, ok := es.receivers[handle]
	if !ok {
		es.mu.Unlock()
		return nil, fmt.Errorf("no such handle %d", handle)
	}
	count := 0
	for evt, handles := range es.subscriptions {
		idx := sort.Search(len(handles), func(i int) bool { return handles[i] >= handle })
		if idx == len(handles) || handles[idx] != handle {
			continue
		}
		handles = append(handles[:idx], handles[idx+1:]...)
		es.subscriptions[evt] = handles
		if len(handles) == 0 {
			count++
			_ = es.write("deregister " + evt)
			delete(es.subscriptions, evt)
		}
	}
	delete(es.receivers, handle)
	if ch != nil {
		close(ch)
	}
	es.mu.Unlock()
	return es.waitAcks(count)
}

// close mirrors EventStream.Close (a normal close frame) and waits for the
// reader to end.
func (es *eventStream) close() {
	_ = es.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	select {
	case <-es.done:
	case <-time.After(10 * time.Second):
		es.conn.Close()
		<-es.done
	}
}

// waitFor mirrors EventStream.WaitFor: register "<prefix>.update.<key>"
// and "<prefix>.save.<key>", then loop: refill the object with GET, run
// test, and otherwise wait for one of those events (or the timeout). It
// returns "complete" or "timeout" like DRP.
func (es *eventStream) waitFor(prefix, key string, fill func() (any, error), test func(any) bool, timeout time.Duration) (string, error) {
	handle, ch, _, err := es.register(prefix+".update."+key, prefix+".save."+key)
	if err != nil {
		return "", err
	}
	defer func() { _, _ = es.deregister(handle) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		obj, err := fill()
		if err != nil {
			return "fill: " + err.Error(), err
		}
		if test(obj) {
			return "complete", nil
		}
		select {
		case ev := <-ch:
			if ev.Err != nil {
				return "read: " + ev.Err.Error(), ev.Err
			}
		case <-timer.C:
			return "timeout", nil
		}
	}
}
