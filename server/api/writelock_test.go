package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/objects"
	"github.com/provisionhq/provision/server/servertest"
)

// TestWriteWaitIsBoundedByContext: a write queued behind a slow one gives
// up with 503 when its context ends instead of waiting for ever, changes
// nothing, and the service keeps working; a panicking hook does not leave
// the write lock held.
func TestWriteWaitIsBoundedByContext(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	objs := ts.Server.Objects()
	entered, release := make(chan struct{}), make(chan struct{})
	objs.OnBeforeChange("profiles", func(ctx context.Context, v objects.View, c *objects.Change) error {
		switch c.Key {
		case "slow":
			close(entered)
			<-release
		case "boom":
			panic("hook exploded")
		}
		return nil
	})
	slowDone := make(chan error, 1)
	go func() {
		_, err := objs.Create(context.Background(), "test", "profiles", &models.Profile{Name: "slow"})
		slowDone <- err
	}()
	select {
	case <-entered:
	case err := <-slowDone:
		t.Fatalf("the slow write ended before its hook ran: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the slow write never reached its hook")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	queued := make(chan error, 1)
	go func() {
		_, err := objs.Create(ctx, "test", "profiles", &models.Profile{Name: "queued"})
		queued <- err
	}()
	select {
	case err := <-queued:
		var me *models.Error
		if !errors.As(err, &me) || me.Code != 503 || !strings.Contains(me.Error(), "gave up waiting") {
			t.Fatalf("queued write: %v", err)
		}
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("a queued write ignored its context")
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	if _, err := objs.Get(context.Background(), "profiles", "queued"); err == nil {
		t.Fatal("the write that gave up was stored")
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = objs.Create(context.Background(), "test", "profiles", &models.Profile{Name: "boom"})
	}()
	done := make(chan error, 1)
	go func() {
		_, err := objs.Create(context.Background(), "test", "profiles", &models.Profile{Name: "after"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("write lock still held after a hook panicked")
	}
}
