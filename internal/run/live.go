package run

import "github.com/airlockhq/airlock/internal/store"

// liveNode is a node's progress in a fan-out run executing on this
// replica, with the change that last set it (Service.liveSeq): a viewer
// that has seen up to some change asks only for what changed since, not
// for every node of a thousand-node run on every wake-up.
type liveNode struct {
	node store.RunNode
	seq  uint64
}

// nodeProgress notes a node's start or end during a fan-out run, so
// that viewers follow each node as it happens (a run on one node shows it
// in the run's own status). It is kept in memory: the run's final record
// stores every node, with its audit events.
func (s *Service) nodeProgress(n *store.RunNode) {
	s.mu.Lock()
	if s.live[n.RunID] == nil {
		s.live[n.RunID] = map[string]liveNode{}
	}
	s.liveSeq++
	s.live[n.RunID][n.Node] = liveNode{node: *n, seq: s.liveSeq}
	s.mu.Unlock()
	s.broker.notify(n.RunID)
}

// LiveNodesSince returns the progress of the nodes of a run executing on
// this replica that changed after change seen (0: all of them), and the
// last change it includes, to pass as seen next time. Changes are
// numbered across runs and never reused, so seen stays valid when a
// run's progress is dropped and begins again (another attempt here).
func (s *Service) LiveNodesSince(runID string, seen uint64) ([]*store.RunNode, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := seen
	var out []*store.RunNode
	for _, n := range s.live[runID] {
		if n.seq > seen {
			nd := n.node
			out = append(out, &nd)
			last = max(last, n.seq)
		}
	}
	return out, last
}
