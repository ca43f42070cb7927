package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/spf13/cobra"
)

func (a *app) newEventsCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "events", Short: "Watch and post events"})
	cmd.AddCommand(a.eventsWatchCmd(), a.eventsPostCmd())
	return cmd
}

func (a *app) eventsWatchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "watch [filter]",
		Short: "Print events matching <type>.<action>.<key> (default *.*.*), one JSON object per line, until interrupted",
		Args:  rangeArgs("watch [filter]", 0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			filter := "*.*.*"
			if len(args) == 1 {
				filter = args[0]
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := c.Events(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.Register(ctx, filter); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			enc := json.NewEncoder(a.out)
			for {
				select {
				case <-ctx.Done():
					return nil
				case e, ok := <-s.C():
					if !ok {
						if ctx.Err() != nil {
							return nil
						}
						return errors.New("event stream ended")
					}
					if err := enc.Encode(&e); err != nil {
						return fmt.Errorf("writing event: %w", err)
					}
				}
			}
		},
	}
}

func (a *app) eventsPostCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "post <json|yaml|file|->",
		Short: "Publish an event (Type, Action, Key, Object)",
		Args:  exactArgs("post <json>", 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			obj, err := a.decodeObjectArg(args[0], "")
			if err != nil {
				return err
			}
			var e models.Event
			if err := models.Remarshal(obj, &e); err != nil {
				return fmt.Errorf("not an event: %w", err)
			}
			if e.Type == "" || e.Action == "" {
				return errors.New("an event needs at least Type and Action")
			}
			if e.Time.IsZero() {
				e.Time = time.Now().UTC()
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			return c.PostEvent(cmd.Context(), &e)
		},
	}
}
