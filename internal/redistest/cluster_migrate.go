package redistest

import (
	"fmt"
	"strconv"
	"strings"
)

// Moving a Cluster's slot from one primary to another.

// BeginMigration starts moving slot from its owner to the primary to:
// to imports it (CLUSTER SETSLOT IMPORTING) and the owner migrates it
// (MIGRATING). Until FinishMigration, the owner serves the keys of the
// slot that it still has and answers ASK for the others, and to serves
// a command that comes with ASKING when it has all of its keys, else
// answers TRYAGAIN. It returns the owner.
func (c *Cluster) BeginMigration(slot int, to *Server) (*Server, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	from, err := c.Owner(slot)
	if err != nil {
		return nil, err
	}
	if from == to {
		return nil, fmt.Errorf("redistest: slot %d is already on %s", slot, to.Addr())
	}
	sl := strconv.Itoa(slot)
	if _, err := to.Do("CLUSTER", "SETSLOT", sl, "IMPORTING", c.ids[from]); err != nil {
		return nil, err
	}
	if _, err := from.Do("CLUSTER", "SETSLOT", sl, "MIGRATING", c.ids[to]); err != nil {
		return nil, err
	}
	return from, nil
}

// FinishMigration moves every key of slot from the node migrating it to
// the node importing it (MIGRATE), then assigns the slot to the latter on
// every primary (CLUSTER SETSLOT NODE), and waits until every node agrees.
// From then on the old owner answers MOVED.
func (c *Cluster) FinishMigration(slot int, from, to *Server) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sl := strconv.Itoa(slot)
	for {
		out, err := from.Do("CLUSTER", "GETKEYSINSLOT", sl, "100")
		if err != nil {
			return err
		}
		if out == "" {
			break
		}
		args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(to.port), "", "0", "5000", "KEYS"}
		args = append(args, strings.Split(out, "\n")...)
		if _, err := from.Do(args...); err != nil {
			return fmt.Errorf("redistest: MIGRATE slot %d from %s to %s: %w", slot, from.Addr(), to.Addr(), err)
		}
	}
	// The importing node first, then the one migrating: the documented
	// order, so that the slot never has no owner that serves it.
	if _, err := to.Do("CLUSTER", "SETSLOT", sl, "NODE", c.ids[to]); err != nil {
		return err
	}
	if _, err := from.Do("CLUSTER", "SETSLOT", sl, "NODE", c.ids[to]); err != nil {
		return err
	}
	ps, err := c.Primaries()
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p != from && p != to {
			if _, err := p.Do("CLUSTER", "SETSLOT", sl, "NODE", c.ids[to]); err != nil {
				return err
			}
		}
	}
	return c.settle()
}

// MoveSlot moves slot to the primary to: BeginMigration then
// FinishMigration.
func (c *Cluster) MoveSlot(slot int, to *Server) error {
	from, err := c.BeginMigration(slot, to)
	if err != nil {
		return err
	}
	return c.FinishMigration(slot, from, to)
}
