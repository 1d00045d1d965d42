package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/store"
)

// broker tells live viewers of a run that there is something new.
type broker struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newBroker() *broker { return &broker{subs: map[string]map[chan struct{}]struct{}{}} }

// Subscribe returns a channel that receives a signal after new output or
// a status change of runID, and a function to stop.
func (b *broker) subscribe(runID string) (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.subs[runID] == nil {
		b.subs[runID] = map[chan struct{}]struct{}{}
	}
	b.subs[runID][ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs[runID], ch)
		if len(b.subs[runID]) == 0 {
			delete(b.subs, runID)
		}
		b.mu.Unlock()
	}
}

func (b *broker) notify(runID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[runID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// sink collects a run's output from all nodes: redacts secrets per node
// and stream, numbers chunks, bounds the total, hashes what it keeps, and
// writes batches to the store.
type sink struct {
	runID   string
	st      store.Store
	broker  *broker
	log     *slog.Logger
	limit   int64
	secrets [][]byte

	mu        sync.Mutex
	seq       int64
	bytes     int64
	truncated bool
	pending   []*store.OutputChunk
	digest    hash.Hash
	streams   []*secret.Redactor
	flushErr  error
}

func newSink(runID string, st store.Store, b *broker, log *slog.Logger, limit int64, secrets [][]byte) *sink {
	return &sink{runID: runID, st: st, broker: b, log: log, limit: limit, secrets: secrets, digest: sha256.New()}
}

// chunkWriter receives raw output of one node's stream.
type chunkWriter struct {
	s            *sink
	node, stream string
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.s.add(w.node, w.stream, p)
	return len(p), nil
}

// writer returns the redacting writer for a node's stream. Call close on
// the returned redactor when the node is done.
func (s *sink) writer(node, stream string) *secret.Redactor {
	r := secret.NewRedactor(&chunkWriter{s: s, node: node, stream: stream}, s.secrets)
	s.mu.Lock()
	s.streams = append(s.streams, r)
	s.mu.Unlock()
	return r
}

// note records one of Airlock's own lines in the output.
func (s *sink) note(node, format string, args ...any) {
	s.add(node, store.StreamSystem, []byte(secret.RedactString(fmt.Sprintf(format, args...)+"\n", s.secrets)))
}

func (s *sink) add(node, stream string, p []byte) {
	if len(p) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.truncated {
		return
	}
	room := s.limit - s.bytes
	data := p
	if int64(len(data)) > room {
		data = data[:max(room, 0)]
		s.truncated = true
	}
	if len(data) > 0 {
		s.append(node, stream, data)
	}
	if s.truncated {
		s.append(node, store.StreamSystem, []byte(fmt.Sprintf("[airlock: output truncated at the %d-byte limit of a run]\n", s.limit)))
	}
}

func (s *sink) append(node, stream string, data []byte) {
	s.seq++
	c := &store.OutputChunk{RunID: s.runID, Seq: s.seq, Node: node, Stream: stream, Data: append([]byte(nil), data...), CreatedAt: time.Now().UTC()}
	s.pending = append(s.pending, c)
	s.bytes += int64(len(data))
	s.digest.Write(data)
}

// flush writes the pending chunks and tells viewers.
func (s *sink) flush(ctx context.Context) {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := s.st.RunOutputAppend(ctx, batch); err != nil {
		s.log.Error("store run output", "run_id", s.runID, "err", err)
		s.mu.Lock()
		s.flushErr = err
		s.mu.Unlock()
	}
	s.broker.notify(s.runID)
}

// close flushes the redactors (releasing held-back tails) and the
// chunks, and returns the totals.
func (s *sink) close(ctx context.Context) (bytes int64, truncated bool, digest string) {
	s.mu.Lock()
	streams := s.streams
	s.mu.Unlock()
	for _, r := range streams {
		_ = r.Flush()
	}
	s.flush(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes, s.truncated, "sha256:" + hex.EncodeToString(s.digest.Sum(nil))
}
