package run

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// ending is a run's final record as this replica committed it.
type ending struct {
	run   *store.Run
	nodes []*store.RunNode
}

// endings hands the final record of a run that ends here to those
// awaiting it, so that they need not read it back.
type endings struct {
	mu sync.Mutex
	w  map[string][]chan ending
}

func (e *endings) watch(id string) chan ending {
	ch := make(chan ending, 1)
	e.mu.Lock()
	if e.w == nil {
		e.w = map[string][]chan ending{}
	}
	e.w[id] = append(e.w[id], ch)
	e.mu.Unlock()
	return ch
}

func (e *endings) stop(id string, ch chan ending) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, c := range e.w[id] {
		if c == ch {
			e.w[id] = append(e.w[id][:i], e.w[id][i+1:]...)
			break
		}
	}
	if len(e.w[id]) == 0 {
		delete(e.w, id)
	}
}

// end is called once r's final record has committed with nodes. Those
// awaiting it get it as a read would return it: times to the
// microsecond, nodes by name.
func (e *endings) end(r *store.Run, nodes []*store.RunNode) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.w[r.ID]) == 0 {
		return
	}
	cp := *r
	cp.FinishedAt = cp.FinishedAt.Truncate(time.Microsecond)
	var ns []*store.RunNode
	for _, n := range nodes {
		n := *n
		n.StartedAt, n.FinishedAt = n.StartedAt.Truncate(time.Microsecond), n.FinishedAt.Truncate(time.Microsecond)
		ns = append(ns, &n)
	}
	slices.SortFunc(ns, func(a, b *store.RunNode) int { return strings.Compare(a.Node, b.Node) })
	for _, ch := range e.w[r.ID] {
		ch <- ending{run: &cp, nodes: ns} // buffered, and sent once
	}
	delete(e.w, r.ID)
}

// Await waits up to d for run id to reach its final status and returns
// it as it stands then, with its nodes once final. It does not check
// who may see the run: the caller has, or (having just requested it)
// checks before showing more than the run's status. A run that ends on
// this replica is handed over as committed; one that ends elsewhere is
// read when a wake-up or the once-a-second poll says it may have
// changed.
func (s *Service) Await(ctx context.Context, id string, d time.Duration) (*store.Run, []*store.RunNode, error) {
	ended := s.endings.watch(id)
	defer s.endings.stop(id, ended)
	changed, stop := s.broker.subscribe(id)
	defer stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second) // a run another replica executes
	defer tick.Stop()
	var cur *store.Run
	for read := true; ; {
		if read {
			// Also read after watching: an end before that is seen here.
			r, err := s.store.RunGet(ctx, id)
			if err != nil {
				return nil, nil, err
			}
			if cur = r; store.RunFinal(r.Status) {
				nodes, err := s.store.RunNodeList(ctx, id)
				return r, nodes, err
			}
		}
		select {
		case e := <-ended:
			return e.run, e.nodes, nil
		case <-changed:
			// Output or progress of a run executing here says nothing
			// the store would: its end comes through ended.
			read = !s.executing(id)
		case <-tick.C:
			read = true
		case <-deadline.C:
			return cur, nil, nil
		case <-ctx.Done():
			return cur, nil, ctx.Err()
		}
	}
}
