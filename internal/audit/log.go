package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock/internal/store"
)

// Log signs checkpoints of the audit log and serves proofs.
type Log struct {
	Store    store.Store
	Signer   note.Signer
	Verifier note.Verifier
	// VerifierKey is the public key in signed-note format.
	VerifierKey string
	Origin      string
	Every       int64
	Interval    time.Duration
	// Publish, when set, receives each new checkpoint note.
	Publish func(note string) error
	Logger  *slog.Logger
	// Now is the clock checkpoints are signed and paced by; nil means
	// time.Now.
	Now func() time.Time
}

func (l *Log) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// LoadOrCreateKey reads the signing and verifier keys from path (two
// lines), creating them (mode 0600) at first start. created reports
// whether it did.
func LoadOrCreateKey(path, name string) (skey, vkey string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		lines := strings.Fields(string(b))
		if len(lines) != 2 {
			return "", "", false, fmt.Errorf("%s: expected the signing key and the verifier key on two lines", path)
		}
		return lines[0], lines[1], false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", "", false, err
	}
	if skey, vkey, err = GenerateKey(name); err != nil {
		return "", "", false, err
	}
	if err := os.WriteFile(path, []byte(skey+"\n"+vkey+"\n"), 0o600); err != nil {
		return "", "", false, err
	}
	return skey, vkey, true, nil
}

// Latest returns the newest checkpoint, or nil.
func (l *Log) Latest(ctx context.Context) (*store.Checkpoint, error) {
	return l.Store.AuditCheckpointLatest(ctx)
}

// Checkpoint signs the tree at its current size now, unless the newest
// checkpoint already covers it.
func (l *Log) Checkpoint(ctx context.Context) (*store.Checkpoint, error) {
	last, err := l.Latest(ctx)
	if err != nil {
		return nil, err
	}
	size, err := l.Store.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	if last != nil && last.Size >= size {
		return last, nil
	}
	c, err := Sign(ctx, l.Store, l.Signer, l.Origin, l.now())
	if err != nil {
		return nil, err
	}
	if l.Publish != nil {
		if err := l.Publish(c.Note); err != nil && l.Logger != nil {
			l.Logger.Error("publish checkpoint", "size", c.Size, "err", err)
		}
	}
	return c, nil
}

// Run signs checkpoints every Every events or Interval with new events,
// until ctx ends; then signs a last one.
func (l *Log) Run(ctx context.Context) {
	tick := time.NewTicker(min(l.Interval, 5*time.Second))
	defer tick.Stop()
	lastSigned := l.now()
	for {
		select {
		case <-ctx.Done():
			_, _ = l.Checkpoint(context.WithoutCancel(ctx))
			return
		case <-tick.C:
		}
		last, err := l.Latest(ctx)
		if err != nil {
			continue
		}
		size, err := l.Store.AuditSize(ctx)
		if err != nil {
			continue
		}
		var covered int64
		if last != nil {
			covered = last.Size
		}
		if size > covered && (size-covered >= l.Every || l.now().Sub(lastSigned) >= l.Interval) {
			if _, err := l.Checkpoint(ctx); err != nil && l.Logger != nil {
				l.Logger.Error("sign checkpoint", "err", err)
			}
			lastSigned = l.now()
		}
	}
}

// InclusionProof proves that the event at index is in the tree of size.
func (l *Log) InclusionProof(ctx context.Context, index, size int64) (tlog.RecordProof, tlog.Hash, error) {
	r := HashReader(ctx, l.Store)
	p, err := tlog.ProveRecord(size, index, r)
	if err != nil {
		return nil, tlog.Hash{}, err
	}
	leaf, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, index)})
	if err != nil {
		return nil, tlog.Hash{}, err
	}
	return p, leaf[0], nil
}

// ConsistencyProof proves that the tree of size old is a prefix of the
// tree of size new.
func (l *Log) ConsistencyProof(ctx context.Context, old, new int64) (tlog.TreeProof, error) {
	return tlog.ProveTree(new, old, HashReader(ctx, l.Store))
}

// RootAt is the tree hash at size.
func (l *Log) RootAt(ctx context.Context, size int64) (tlog.Hash, error) {
	return tlog.TreeHash(size, HashReader(ctx, l.Store))
}
