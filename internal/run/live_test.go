package run

import (
	"slices"
	"testing"

	"github.com/airlockhq/airlock/internal/store"
)

// A viewer that passes back the change it last saw gets only the nodes
// that changed since, on any run, and still after a run's progress is
// dropped and begins again.
func TestLiveNodesSince(t *testing.T) {
	s := &Service{live: map[string]map[string]liveNode{}, broker: newBroker()}
	names := func(ns []*store.RunNode) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Node+":"+n.Status)
		}
		slices.Sort(out)
		return out
	}
	for _, n := range []string{"a", "b", "c"} {
		s.nodeProgress(&store.RunNode{RunID: "run_1", Node: n, Status: store.RunRunning})
	}
	s.nodeProgress(&store.RunNode{RunID: "run_2", Node: "x", Status: store.RunRunning})
	all, seen := s.LiveNodesSince("run_1", 0)
	if got, want := names(all), []string{"a:running", "b:running", "c:running"}; !slices.Equal(got, want) {
		t.Fatalf("all: got %v, want %v", got, want)
	}
	if more, again := s.LiveNodesSince("run_1", seen); len(more) != 0 || again != seen {
		t.Fatalf("nothing changed, got %v (seen %d → %d)", names(more), seen, again)
	}
	s.nodeProgress(&store.RunNode{RunID: "run_2", Node: "x", Status: "succeeded"})
	s.nodeProgress(&store.RunNode{RunID: "run_1", Node: "b", Status: "failed"})
	changed, seen2 := s.LiveNodesSince("run_1", seen)
	if got, want := names(changed), []string{"b:failed"}; !slices.Equal(got, want) || seen2 <= seen {
		t.Fatalf("after one change: got %v (seen %d → %d), want %v", got, seen, seen2, want)
	}
	s.forget("run_1")
	if gone, _ := s.LiveNodesSince("run_1", 0); len(gone) != 0 {
		t.Fatalf("forgotten run still has progress %v", names(gone))
	}
	s.nodeProgress(&store.RunNode{RunID: "run_1", Node: "a", Status: store.RunRunning}) // a second attempt here
	if again, _ := s.LiveNodesSince("run_1", seen2); !slices.Equal(names(again), []string{"a:running"}) {
		t.Fatalf("a second attempt's progress is missed by a viewer of the first: got %v", names(again))
	}
}
