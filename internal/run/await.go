package run

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

// ending is a run's final record as this replica committed it.
type ending struct {
	run   *store.Run
	nodes []*store.RunNode
	// output is the run's whole output (what a read of it returns),
	// when it was short enough to be kept; nil otherwise.
	output []*store.OutputChunk
}

// endings hands the final record of a run that ends here to those
// awaiting it, so that they need not read it back.
type endings struct {
	mu sync.Mutex
	w  map[string][]chan ending
	// recent are the last runs that ended here, for a waiter that
	// starts watching just after the end (a short run its request
	// started can end before its requester awaits it).
	recent [32]ending
	next   int
}

func (e *endings) watch(id string) chan ending {
	ch := make(chan ending, 1)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.recent {
		if r.run != nil && r.run.ID == id {
			ch <- r
			return ch
		}
	}
	if e.w == nil {
		e.w = map[string][]chan ending{}
	}
	e.w[id] = append(e.w[id], ch)
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

// end is called once r's final record has committed with nodes and,
// when the whole output of the run was kept, with output (else nil).
// Those awaiting it get it as a read would return it: times to the
// microsecond, nodes by name.
func (e *endings) end(r *store.Run, nodes []*store.RunNode, output []*store.OutputChunk) {
	var out []*store.OutputChunk
	if output != nil {
		out = make([]*store.OutputChunk, 0, len(output))
		for _, c := range output {
			c := *c
			c.CreatedAt = c.CreatedAt.Truncate(time.Microsecond)
			out = append(out, &c)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cp := *r
	cp.FinishedAt = cp.FinishedAt.Truncate(time.Microsecond)
	var ns []*store.RunNode
	for _, n := range nodes {
		n := *n
		n.StartedAt, n.FinishedAt = n.StartedAt.Truncate(time.Microsecond), n.FinishedAt.Truncate(time.Microsecond)
		ns = append(ns, &n)
	}
	slices.SortFunc(ns, func(a, b *store.RunNode) int { return strings.Compare(a.Node, b.Node) })
	end := ending{run: &cp, nodes: ns, output: out} // read only, by every waiter
	e.recent[e.next] = end
	e.next = (e.next + 1) % len(e.recent)
	for _, ch := range e.w[r.ID] {
		ch <- end // buffered, and sent once
	}
	delete(e.w, r.ID)
}

// Await waits up to d for run r (as the caller has it) to reach its
// final status and returns it as it stands then, with its nodes once
// final. It does not check who may see the run: the caller has, or
// (having just requested it) checks before showing more than the run's
// status. A run that ends on this replica is handed over as committed;
// one that ends elsewhere is read when a wake-up or the once-a-second
// poll says it may have changed.
func (s *Service) Await(ctx context.Context, r *store.Run, d time.Duration) (*store.Run, []*store.RunNode, error) {
	e, err := s.await(ctx, r, d)
	return e.run, e.nodes, err
}

// await is Await, with the run's output when it ended here and was kept.
func (s *Service) await(ctx context.Context, r *store.Run, d time.Duration) (ending, error) {
	id := r.ID
	ended := s.endings.watch(id)
	defer s.endings.stop(id, ended)
	changed, stop := s.broker.subscribe(id)
	defer stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second) // a run another replica executes
	defer tick.Stop()
	// Read once after watching, so that an end before that is seen —
	// unless r is running under this worker: it ends here, and its end
	// is handed over (kept a while if it came first). Should the run be
	// taken from this worker, a wake-up or the poll reads it.
	cur := r
	for read := r.Status != store.RunRunning || r.WorkerID != s.workerID; ; {
		if read {
			r, err := s.store.RunGet(ctx, id)
			if err != nil {
				return ending{}, err
			}
			if cur = r; store.RunFinal(r.Status) {
				nodes, err := s.store.RunNodeList(ctx, id)
				if err != nil {
					return ending{}, err
				}
				return ending{run: r, nodes: nodes}, nil
			}
		}
		select {
		case e := <-ended:
			return e, nil
		case <-changed:
			// Output or progress of a run executing here says nothing
			// the store would: its end comes through ended.
			read = !s.executing(id)
		case <-tick.C:
			read = true
		case <-deadline.C:
			return ending{run: cur}, nil
		case <-ctx.Done():
			return ending{run: cur}, ctx.Err()
		}
	}
}

// Awaited is a run as its requester awaited it (RequestAndAwait).
type Awaited struct {
	Run *store.Run
	// Waited: the run could start, and was waited for.
	Waited bool
	// Ended: the run ended within the wait and the requester may view
	// it; Nodes and Output (its first chunks, More when there may be
	// more) are then set.
	Ended  bool
	Nodes  []*store.RunNode
	Output []*store.OutputChunk
	More   bool
}

// RequestAndAwait requests a run as Request does and, when wait > 0 and
// the run may start (queued or running), waits up to wait for its end:
// a short run in one call. An ended run's nodes and output are the
// requester's only if policy lets them view the run, decided on the
// procedure as this request read it to plan the run (a replayed
// Idempotency-Key reads it again). At most limit chunks of output are
// returned. An error after the run was stored is not returned: the run
// is, as it stands.
func (s *Service) RequestAndAwait(ctx context.Context, p *identity.Principal, rp RequestParams, wait time.Duration, limit int) (*Awaited, error) {
	r, plan, err := s.request(ctx, p, rp)
	if err != nil {
		return nil, err
	}
	a := &Awaited{Run: r}
	if wait <= 0 || (r.Status != store.RunQueued && r.Status != store.RunRunning) {
		return a, nil // not asked, or the run waits for people
	}
	a.Waited = true
	e, err := s.await(ctx, r, wait)
	if err != nil {
		return a, nil
	}
	if a.Run = e.run; !store.RunFinal(e.run.Status) {
		return a, nil
	}
	// The output is the viewer's, as on GET …/output: checked here.
	var res policy.Resource
	var c policy.Context
	if plan != nil {
		res, c, err = s.resourceOn(ctx, e.run, plan.view, p)
	} else {
		res, c, err = s.resource(ctx, e.run, p)
	}
	if err != nil || s.authz.CheckObject(ctx, p, policy.ActionViewRun, res, c, "run") != nil {
		return a, nil
	}
	out := e.output
	if out == nil { // not kept: read
		if out, err = s.store.RunOutputList(ctx, e.run.ID, 0, limit); err != nil {
			return a, nil
		}
	}
	out = out[:min(len(out), limit)]
	a.Ended, a.Nodes, a.Output, a.More = true, e.nodes, out, len(out) == limit
	return a, nil
}
