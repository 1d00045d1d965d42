package audit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

// GenerateKey returns a new Ed25519 signing key for checkpoints, and its
// public verifier key, in the signed-note formats.
func GenerateKey(name string) (signer, verifier string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// HashReader reads stored tree hashes from a store reader.
func HashReader(ctx context.Context, r store.Reader) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		raw, err := r.AuditHashes(ctx, idx)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(raw))
		for i, b := range raw {
			copy(out[i][:], b)
		}
		return out, nil
	})
}

// CheckpointText is the body of a checkpoint note: origin, tree size and
// root hash, one per line (the C2SP checkpoint layout).
func CheckpointText(origin string, size int64, root tlog.Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
}

// Sign makes a checkpoint of the tree at its current size.
func Sign(ctx context.Context, s store.Store, signer note.Signer, origin string, now time.Time) (*store.Checkpoint, error) {
	size, err := s.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	root, err := tlog.TreeHash(size, HashReader(ctx, s))
	if err != nil {
		return nil, fmt.Errorf("tree hash at %d: %w", size, err)
	}
	msg, err := note.Sign(&note.Note{Text: CheckpointText(origin, size, root)}, signer)
	if err != nil {
		return nil, err
	}
	c := &store.Checkpoint{Size: size, RootHash: base64.StdEncoding.EncodeToString(root[:]), Note: string(msg), CreatedAt: now.UTC()}
	return c, s.AuditCheckpointAdd(ctx, c)
}

// OpenCheckpoint checks a checkpoint note's signature and returns its
// origin, size and root.
func OpenCheckpoint(msg string, v note.Verifier) (string, int64, tlog.Hash, error) {
	n, err := note.Open([]byte(msg), note.VerifierList(v))
	if err != nil {
		return "", 0, tlog.Hash{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return "", 0, tlog.Hash{}, fmt.Errorf("checkpoint: expected origin, size and hash lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return "", 0, tlog.Hash{}, fmt.Errorf("checkpoint: bad size %q", lines[1])
	}
	b, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(b) != tlog.HashSize {
		return "", 0, tlog.Hash{}, fmt.Errorf("checkpoint: bad root hash")
	}
	var root tlog.Hash
	copy(root[:], b)
	return lines[0], size, root, nil
}

// Problem is one finding of Verify, at a log position where it applies.
type Problem struct {
	Position int64  `json:"position"`
	Kind     string `json:"kind"` // edited | missing | unexpected | unhashed | truncated | checkpoint
	Detail   string `json:"detail"`
}

func (p Problem) String() string {
	return fmt.Sprintf("position %d: %s: %s", p.Position, p.Kind, p.Detail)
}

// Report is the outcome of Verify.
type Report struct {
	Events      int64     `json:"events"`
	Head        int64     `json:"head"`
	Checkpoints int       `json:"checkpoints_checked"`
	RootHash    string    `json:"root_hash"`
	Problems    []Problem `json:"problems"`
	// Omitted counts problems found beyond the first 100 (an insertion
	// early in a large log makes every later position differ).
	Omitted int64 `json:"omitted,omitempty"`
}

// OK reports whether everything holds.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

const maxProblems = 100

// maxGap is the longest run of positions without events that Verify
// fills in and reports one by one; a longer one (a head or positions
// rewritten far ahead) ends the verification there instead of making it
// walk, or hold hashes for, positions that hold nothing.
const maxGap = 1 << 20

func (r *Report) add(p Problem) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
		return
	}
	r.Omitted++
}

// Verify recomputes the tree from the stored events and checks it
// against the hashes recorded when each event was appended, the head
// size, and every checkpoint (stored ones and those given, e.g. kept
// outside by an auditor), whose signatures must verify with v. Edited,
// deleted, inserted and reordered events are reported by position.
func Verify(ctx context.Context, s store.Reader, v note.Verifier, external []string) (*Report, error) {
	head, err := s.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{Head: head, Problems: []Problem{}}
	// recomputed stored hashes, in tlog index order (about two per event;
	// the head is only a hint, it may have been rewritten)
	hashes := make([]tlog.Hash, 0, 2*min(head, 1<<22)+64)
	mem := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= int64(len(hashes)) {
				return nil, fmt.Errorf("index %d not computed", x)
			}
			out[i] = hashes[x]
		}
		return out, nil
	})
	var n int64 // positions verified so far
	gaps := map[int64]bool{}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	// gone reports a stretch of more than maxGap positions without
	// events: the rest cannot be lined up, so verification stops there.
	gone := func(next int64) {
		if next >= head {
			rep.add(Problem{Position: next, Kind: "unexpected", Detail: fmt.Sprintf(
				"an event far beyond the log head (%d): not appended by Airlock; verification stops here", head)})
			return
		}
		rep.add(Problem{Position: n, Kind: "missing", Detail: fmt.Sprintf(
			"no event at positions %d to %d or beyond (the log head records %d): deleted, or positions rewritten; verification stops here", n, next-1, head)})
	}
read:
	for b := range fetch(fctx, s, head) {
		if b.err != nil {
			return nil, b.err
		}
		for _, l := range b.leaves {
			if l.seq-n > maxGap {
				gone(l.seq)
				break read
			}
			for n < l.seq { // a gap: events deleted
				rep.add(Problem{Position: n, Kind: "missing", Detail: "no event at this position: deleted"})
				gaps[n] = true
				add, _ := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(nil), mem) // keeps positions aligned
				hashes = append(hashes, add...)
				n++
			}
			add, err := tlog.StoredHashesForRecordHash(n, l.hash, mem)
			if err != nil {
				return nil, err
			}
			hashes = append(hashes, add...)
			n++
		}
		if b.hi > 0 && b.hi-n > maxGap {
			gone(b.hi)
			break
		}
	}
	// Compare with the hashes recorded at append time.
	if err := compareStored(ctx, s, rep, hashes, n, gaps); err != nil {
		return nil, err
	}
	rep.Events = n
	if n != head {
		rep.add(Problem{Position: min(n, head), Kind: "truncated",
			Detail: fmt.Sprintf("the log head records %d events but storage holds %d", head, n)})
	}
	if n > 0 {
		root, err := tlog.TreeHash(n, mem)
		if err != nil {
			return nil, err
		}
		rep.RootHash = base64.StdEncoding.EncodeToString(root[:])
	}
	cps, err := s.AuditCheckpoints(ctx)
	if err != nil {
		return nil, err
	}
	notes := external
	for _, c := range cps {
		notes = append(notes, c.Note)
	}
	for _, msg := range notes {
		_, size, root, err := OpenCheckpoint(msg, v)
		if err != nil {
			rep.add(Problem{Position: -1, Kind: "checkpoint", Detail: err.Error()})
			continue
		}
		rep.Checkpoints++
		if size > n {
			rep.add(Problem{Position: n, Kind: "truncated",
				Detail: fmt.Sprintf("a signed checkpoint covers %d events; the log holds %d: events from position %d on are gone", size, n, n)})
			continue
		}
		got, err := tlog.TreeHash(size, mem)
		if err != nil {
			return nil, err
		}
		if got != root {
			rep.add(Problem{Position: firstBad(rep, size), Kind: "checkpoint",
				Detail: fmt.Sprintf("the first %d events no longer hash to the root signed in the checkpoint at size %d", size, size)})
		}
	}
	return rep, nil
}

// blockLevel is the tree level whose stored hashes compareStored reads
// first: one per 2^blockLevel events. Only a block whose hash differs is
// read leaf by leaf, so a sound log costs 1/256 of its hash rows.
const blockLevel = 8

// compareStored checks the recomputed hashes (of n positions) against
// those recorded when each event was appended, and reports each position
// whose event differs (edited, replaced or moved) or was never hashed
// (not appended by Airlock). Gaps are already reported as missing.
func compareStored(ctx context.Context, s store.Reader, rep *Report, hashes []tlog.Hash, n int64, gaps map[int64]bool) error {
	blocks := n >> blockLevel
	var suspect []int64
	const chunk = 500
	for lo := int64(0); lo < blocks; lo += chunk {
		var idx []int64
		for b := lo; b < min(lo+chunk, blocks); b++ {
			idx = append(idx, tlog.StoredHashIndex(blockLevel, b))
		}
		stored, err := s.AuditHashes(ctx, idx)
		if airlock.ErrorKind(err) == airlock.NotFound {
			for b := lo; b < min(lo+chunk, blocks); b++ { // some are missing: look at each
				suspect = append(suspect, b)
			}
			continue
		}
		if err != nil {
			return err
		}
		for i, h := range stored {
			if string(h) != string(hashes[idx[i]][:]) {
				suspect = append(suspect, lo+int64(i))
			}
		}
	}
	leaves := func(from, to int64) error { // positions [from, to)
		if from >= to {
			return nil
		}
		got, err := s.AuditHashRange(ctx, tlog.StoredHashIndex(0, from), tlog.StoredHashIndex(0, to-1)+1)
		if err != nil {
			return err
		}
		hi := 0
		for p := from; p < to; p++ {
			if gaps[p] {
				continue
			}
			want := tlog.StoredHashIndex(0, p)
			for hi < len(got) && got[hi].Index < want {
				hi++
			}
			switch {
			case hi >= len(got) || got[hi].Index != want:
				rep.add(Problem{Position: p, Kind: "unhashed", Detail: "no hash was recorded for this event: it was not appended by Airlock"})
			case string(got[hi].Hash) != string(hashes[want][:]):
				rep.add(Problem{Position: p, Kind: "edited", Detail: "the event differs from the one hashed when it was appended (edited, replaced or moved here)"})
			}
		}
		return nil
	}
	for _, b := range suspect {
		if err := leaves(b<<blockLevel, (b+1)<<blockLevel); err != nil {
			return err
		}
	}
	// The tail that fills no block is read leaf by leaf.
	if err := leaves(blocks<<blockLevel, n); err != nil {
		return err
	}
	// Deleted positions were reported while reading; keep the report in
	// position order.
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Position < rep.Problems[j].Position })
	return nil
}

type leafHash struct {
	seq  int64
	hash tlog.Hash
}

type batch struct {
	hi     int64 // the range's end (0: open-ended)
	leaves []leafHash
	err    error
}

// fetch reads the log in position ranges and hashes each event's leaf,
// two ranges at a time ahead of the tree building, delivered in order:
// reading and hashing rows costs more than building the tree from their
// hashes. Ranges are made as they are needed (the head may have been
// rewritten to anything); the last is open-ended, to catch rows beyond
// the recorded head. Cancel ctx to stop it early.
func fetch(ctx context.Context, s store.Reader, head int64) <-chan batch {
	const size = 8192
	type job struct {
		lo, hi int64 // hi 0: open-ended
		out    chan batch
	}
	ordered := make(chan batch, 2)
	work := make(chan job)
	order := make(chan job, 4)
	for range 2 {
		go func() {
			var buf []byte
			for j := range work {
				b := batch{hi: j.hi, leaves: make([]leafHash, 0, max(j.hi-j.lo, 0))}
				b.err = s.AuditLeaves(ctx, j.lo, j.hi, func(r *store.LeafRow) error {
					buf = r.AppendLeaf(buf[:0])
					b.leaves = append(b.leaves, leafHash{seq: r.Seq, hash: tlog.RecordHash(buf)})
					return nil
				})
				j.out <- b
			}
		}()
	}
	go func() {
		defer close(work)
		defer close(order)
		for lo := int64(0); ; lo += size {
			j := job{lo: lo, hi: min(lo+size, head), out: make(chan batch, 1)}
			if lo >= head {
				j.hi = 0
			}
			for _, ch := range []chan job{order, work} {
				select {
				case ch <- j:
				case <-ctx.Done():
					return
				}
			}
			if j.hi == 0 {
				return
			}
		}
	}()
	go func() {
		defer close(ordered)
		for j := range order {
			select {
			case b := <-j.out:
				select {
				case ordered <- b:
				case <-ctx.Done():
					return
				}
				if b.err != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return ordered
}

// firstBad names the earliest position already found wrong below size,
// or size-1 when only the checkpoint tells (stored hashes rewritten too).
func firstBad(rep *Report, size int64) int64 {
	best := size - 1
	for _, p := range rep.Problems {
		if p.Position >= 0 && p.Position < best {
			best = p.Position
		}
	}
	return best
}
