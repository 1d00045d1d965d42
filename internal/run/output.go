package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/store"
)

// broker tells live viewers of a run that there is something new: those
// on this replica directly, and, through remote (remote.go), the other
// replicas', whose brokers wake theirs (wake, never notify: a notice is
// not passed on again).
type broker struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
	// remote, when set, tells the other replicas; its Publish never
	// blocks, so the run path may call it.
	remote store.Notifier
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

// notify tells the viewers of runID, here and on the other replicas, that
// its output or status changed (after the change is stored).
func (b *broker) notify(runID string) {
	b.mu.Lock()
	b.signal(runID)
	remote := b.remote
	b.mu.Unlock()
	if remote != nil {
		remote.Publish(NoticeRun, runID)
	}
}

// wake tells this replica's viewers of runID only, or of every run when
// runID is "".
func (b *broker) wake(runID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if runID != "" {
		b.signal(runID)
		return
	}
	for id := range b.subs {
		b.signal(id)
	}
}

// signal needs b.mu.
func (b *broker) signal(runID string) {
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
	runID string
	lease store.Lease
	// leaseLost is called once when the store refuses output because
	// this attempt no longer holds the run.
	leaseLost func()
	st        store.Store
	broker    *broker
	log       *slog.Logger
	limit     int64
	secrets   [][]byte
	// redact is secrets prepared for redaction once for every stream;
	// setSecrets sets both.
	redact *secret.Values

	mu        sync.Mutex
	seq       int64
	bytes     int64 // taken in, counted against the limit
	truncated bool
	pending   []*store.OutputChunk
	streams   []*secret.Redactor
	// stored and digest are over exactly the chunks stored, in order:
	// what the run's final event certifies.
	stored int64
	digest hash.Hash
	// unsure: a batch whose write failed in a way that may have stored
	// it (a lost commit). It is written again alone, before anything
	// else: a conflict then means it is there (a batch is stored whole or
	// not at all), success that it was not.
	unsure   []*store.OutputChunk
	lost     int64 // bytes that could not be stored
	flushErr error
	fenced   bool // the lease was lost: nothing more is written
	// kept are the chunks stored, in order, while they are a short
	// run's whole output (at most keepBytes, none lost, no earlier
	// attempt's): handed with the run's end to those awaiting it, who
	// need not read them back. nil with keepOff once that is not so.
	kept      []*store.OutputChunk
	keptBytes int64
	keepOff   bool
}

// keepBytes bounds the output a run keeps for those awaiting its end;
// the last 32 ends are kept (endings.recent).
const keepBytes = 8 << 10

func newSink(lease store.Lease, st store.Store, b *broker, log *slog.Logger, limit int64, secrets [][]byte) *sink {
	return &sink{runID: lease.RunID, lease: lease, st: st, broker: b, log: log, limit: limit, secrets: secrets, digest: sha256.New()}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.values().Writer(&chunkWriter{s: s, node: node, stream: stream})
	s.streams = append(s.streams, r)
	return r
}

// setSecrets sets the values redacted from what is written after.
func (s *sink) setSecrets(secrets [][]byte) {
	vs := secret.NewValues(secrets)
	s.mu.Lock()
	s.secrets, s.redact = secrets, vs
	s.mu.Unlock()
}

// values returns the secrets prepared for redaction. s.mu is held.
func (s *sink) values() *secret.Values {
	if s.redact == nil {
		s.redact = secret.NewValues(s.secrets)
	}
	return s.redact
}

// note records one of Airlock's own lines in the output.
func (s *sink) note(node, format string, args ...any) {
	s.mu.Lock()
	vs := s.values()
	s.mu.Unlock()
	s.add(node, store.StreamSystem, []byte(vs.String(fmt.Sprintf(format, args...)+"\n")))
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
	c := &store.OutputChunk{RunID: s.runID, Seq: s.seq, Attempt: s.lease.Attempt, Node: node, Stream: stream, Data: append([]byte(nil), data...), CreatedAt: time.Now().UTC()}
	s.pending = append(s.pending, c)
	s.bytes += int64(len(data))
}

// resume continues the output of a run's earlier attempt: numbering,
// the byte count and the digest go on from what is stored, so a second
// attempt never overwrites or collides with the first, and the final
// digest is over everything the run stored.
func (s *sink) resume(ctx context.Context, attempt int) error {
	for after := int64(0); ; {
		chunks, err := s.st.RunOutputList(ctx, s.runID, after, 1000)
		if err != nil {
			return err
		}
		if len(chunks) == 0 {
			break
		}
		s.mu.Lock()
		s.stopKeeping() // an earlier attempt's output: read it back
		for _, c := range chunks {
			s.seq, after = c.Seq, c.Seq
			s.bytes += int64(len(c.Data))
			s.stored += int64(len(c.Data))
			s.digest.Write(c.Data)
		}
		s.mu.Unlock()
	}
	s.note("airlock", "attempt %d of this run starts here; the output above is an earlier attempt's", attempt)
	return nil
}

// flush writes the pending chunks and tells viewers. Chunks that could
// not be written stay pending for the next flush.
func (s *sink) flush(ctx context.Context) {
	s.mu.Lock()
	batch, retrying := s.unsure, s.unsure != nil
	if !retrying {
		batch, s.pending = s.pending, nil
	}
	fenced := s.fenced
	s.mu.Unlock()
	if len(batch) == 0 || fenced {
		return
	}
	err := s.st.RunOutputAppend(ctx, s.lease, batch)
	if err != nil && retrying && airlock.ErrorKind(err) == airlock.Conflict {
		err = nil // the write that seemed to fail had stored them
	}
	s.mu.Lock()
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		// The run is someone else's now (reaped, requeued, finished):
		// this attempt's output is not the run's any more.
		s.stopKeeping()
		s.log.Warn("run output refused: this attempt no longer holds the run", "run_id", s.runID, "attempt", s.lease.Attempt)
		s.fenced, s.flushErr = true, err
		if s.leaseLost != nil {
			defer s.leaseLost()
		}
	case err != nil && airlock.ErrorKind(err) == airlock.Conflict:
		// Positions already taken: storing again cannot help.
		s.stopKeeping()
		s.log.Error("store run output: dropped", "run_id", s.runID, "chunks", len(batch), "err", err)
		for _, c := range batch {
			s.lost += int64(len(c.Data))
		}
		s.flushErr = err
	case err != nil:
		s.log.Error("store run output; keeping it to store later", "run_id", s.runID, "chunks", len(batch), "err", err)
		switch {
		case retrying: // still unknown whether it is stored
		case airlock.ErrorKind(err) == airlock.Unavailable:
			s.unsure = batch
		default:
			s.pending = append(batch, s.pending...)
		}
		s.flushErr = err
	default:
		if retrying {
			s.stopKeeping() // stored by the write that seemed to fail, or by this one
		}
		s.keep(batch)
		for _, c := range batch {
			s.stored += int64(len(c.Data))
			s.digest.Write(c.Data)
		}
		s.flushErr, s.unsure = nil, nil
	}
	s.mu.Unlock()
	s.broker.notify(s.runID)
}

// close flushes the redactors (releasing held-back tails) and returns
// the chunks still to be stored: they go in with the run's outcome, one
// write rather than two. A batch of unknown fate (a lost commit) is
// settled first, trying a few times; should that fail, it and what
// follows it are not claimed. lost is the number of bytes that could not
// be stored, with the last error: the run must not claim them.
func (s *sink) close(ctx context.Context) (final []*store.OutputChunk, lost int64, err error) {
	s.mu.Lock()
	streams := s.streams
	s.mu.Unlock()
	for _, r := range streams {
		_ = r.Flush()
	}
	for wait := 200 * time.Millisecond; !s.settled(); wait *= 2 {
		s.flush(ctx) // the unsure batch, alone
		if s.settled() || wait > 5*time.Second || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unsure == nil && !s.fenced {
		final, s.pending = s.pending, nil
	}
	// What is still pending, or of unknown fate, is not claimed: should
	// an unsure batch be stored after all, verification reports the
	// difference, as it must.
	for _, c := range append(s.unsure, s.pending...) {
		s.lost += int64(len(c.Data))
	}
	s.pending, s.unsure = nil, nil
	return final, s.lost, s.flushErr
}

// keep adds stored chunks to those kept, while they fit. s.mu is held.
func (s *sink) keep(chunks []*store.OutputChunk) {
	if s.keepOff {
		return
	}
	if s.keptBytes += chunkBytes(chunks); s.keptBytes > keepBytes {
		s.stopKeeping()
		return
	}
	s.kept = append(s.kept, chunks...)
}

// stopKeeping keeps no output any more: the run's is read back. s.mu is
// held.
func (s *sink) stopKeeping() { s.kept, s.keepOff = nil, true }

// settled reports whether no batch is of unknown fate, or nothing more
// is written.
func (s *sink) settled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsure == nil || s.fenced
}

// certify returns what the run's outcome claims when it stores final
// with it: the bytes stored and the digest over them, in order; and when
// the run's whole output was kept, that output (whole, with final).
func (s *sink) certify(final []*store.OutputChunk) (bytes int64, truncated bool, digest string, whole []*store.OutputChunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.keepOff && s.lost == 0 && s.keptBytes+chunkBytes(final) <= keepBytes {
		whole = append(append([]*store.OutputChunk{}, s.kept...), final...)
	}
	bytes = s.stored
	h := s.digest
	if len(final) > 0 {
		c, err := s.digest.(hash.Cloner).Clone()
		if err != nil {
			panic("run: sha256 state cannot be cloned: " + err.Error()) // the standard library's can
		}
		h = c
		for _, c := range final {
			bytes += int64(len(c.Data))
			h.Write(c.Data)
		}
	}
	return bytes, s.truncated, "sha256:" + hex.EncodeToString(h.Sum(nil)), whole
}

func chunkBytes(cs []*store.OutputChunk) (n int64) {
	for _, c := range cs {
		n += int64(len(c.Data))
	}
	return n
}
