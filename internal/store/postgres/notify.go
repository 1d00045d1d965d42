package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock/internal/store"
)

var _ store.Notifier = (*DB)(nil)

// Publish sends keys under topic to the other replicas (store.Notifier).
func (db *DB) Publish(topic string, keys ...string) { db.notifier.publish(topic, keys...) }

// Listen passes other replicas' notices to handlers until ctx ends
// (store.Notifier).
func (db *DB) Listen(ctx context.Context, handlers map[string]func(key string)) error {
	return db.notifier.listen(ctx, handlers)
}

const (
	// maxPendingKeys bounds the keys of one topic waiting to be sent;
	// past it they become the key "" (any key), which says as much.
	maxPendingKeys = 1024
	// maxPayload keeps a NOTIFY payload under PostgreSQL's 8000 bytes.
	maxPayload = 7900
	// sendTimeout bounds one batch's round trip; a batch that cannot be
	// sent is dropped (listeners also look on a timer).
	sendTimeout = 5 * time.Second

	// A quiet listening connection is pinged this often, so that one
	// lost without a word (a dead peer, no RST) is found and made again.
	listenIdle = 30 * time.Second
	// Reconnecting waits from listenBackoffMin, doubling to
	// listenBackoffMax; a connection that lasted listenBackoffReset
	// starts the next wait from the minimum again.
	listenBackoffMin   = 100 * time.Millisecond
	listenBackoffMax   = 5 * time.Second
	listenBackoffReset = 30 * time.Second
)

// notifier carries notices between the replicas of one Airlock cluster:
// one schema, hence one channel per schema (schemas of one database are
// separate clusters, as the tests' are). Outgoing notices are coalesced
// in memory and sent by one goroutine, one statement per batch, through
// the pool; incoming ones arrive on a connection of the listener's own.
//
// A payload is "SENDER TOPIC:KEY TOPIC:KEY …". SENDER is random per
// store, so a listener skips its own store's notices, which PostgreSQL
// delivers to every listener of the channel, the sender's included.
type notifier struct {
	db       *sql.DB
	cfg      *pgx.ConnConfig
	channel  string
	sender   string
	log      *slog.Logger
	readOnly bool

	mu      sync.Mutex
	pending map[string]map[string]struct{} // topic → keys
	failing bool                           // the last batch could not be sent

	kick     chan struct{}
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	// listenPID is the listening connection's backend (tests kill it).
	listenPID atomic.Uint32
}

func newNotifier(ctx context.Context, db *sql.DB, cfg *pgx.ConnConfig, opts Options) (*notifier, error) {
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&schema); err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	rand.Read(b)
	n := &notifier{db: db, cfg: cfg.Copy(), channel: channelName(schema), sender: hex.EncodeToString(b), log: opts.Log,
		readOnly: opts.ReadOnly, pending: map[string]map[string]struct{}{}, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	// The listening connection only listens: never read-only, whatever
	// the pool is.
	delete(n.cfg.RuntimeParams, "default_transaction_read_only")
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if !n.readOnly {
		n.done = make(chan struct{})
		go n.run()
	}
	return n, nil
}

// channelName is the schema's channel; a channel name is an identifier
// (at most 63 bytes), so a long schema name is hashed.
func channelName(schema string) string {
	if c := "airlock:" + schema; len(c) <= 63 {
		return c
	}
	h := sha256.Sum256([]byte(schema))
	return "airlock:" + hex.EncodeToString(h[:16])
}

func (n *notifier) publish(topic string, keys ...string) {
	if n.readOnly || len(keys) == 0 {
		return
	}
	n.mu.Lock()
	set := n.pending[topic]
	if set == nil {
		set = map[string]struct{}{}
		n.pending[topic] = set
	}
	if _, all := set[""]; !all {
		for _, k := range keys {
			if k == "" || strings.ContainsRune(k, ' ') || len(set) >= maxPendingKeys {
				clear(set)
				set[""] = struct{}{}
				break
			}
			set[k] = struct{}{}
		}
	}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// run sends what is pending whenever there is something: while one
// batch is on its way, the next gathers.
func (n *notifier) run() {
	defer close(n.done)
	for {
		select {
		case <-n.kick:
			n.send(sendTimeout)
		case <-n.quit:
			n.send(time.Second) // what the last moments announced
			return
		}
	}
}

func (n *notifier) stop() {
	if n.done == nil {
		return
	}
	n.stopOnce.Do(func() { close(n.quit) })
	<-n.done
}

func (n *notifier) send(timeout time.Duration) {
	n.mu.Lock()
	pending := n.pending
	if len(pending) == 0 {
		n.mu.Unlock()
		return
	}
	n.pending = map[string]map[string]struct{}{}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := n.db.ExecContext(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, n.channel, n.payloads(pending))
	n.mu.Lock()
	was := n.failing
	n.failing = err != nil
	n.mu.Unlock()
	switch {
	case err != nil && !was:
		n.log.Warn("postgres: could not tell the other replicas what changed; they find out on their timers", "channel", n.channel, "err", err)
	case err == nil && was:
		n.log.Info("postgres: telling the other replicas what changed again", "channel", n.channel)
	}
}

// payloads packs pending notices into as few payloads as fit.
func (n *notifier) payloads(pending map[string]map[string]struct{}) []string {
	var out []string
	var b strings.Builder
	b.WriteString(n.sender)
	for topic, keys := range pending {
		for k := range keys {
			if b.Len()+2+len(topic)+len(k) > maxPayload && b.Len() > len(n.sender) {
				out = append(out, b.String())
				b.Reset()
				b.WriteString(n.sender)
			}
			b.WriteString(" ")
			b.WriteString(topic)
			b.WriteString(":")
			b.WriteString(k)
		}
	}
	return append(out, b.String())
}

func (n *notifier) listen(ctx context.Context, handlers map[string]func(key string)) error {
	wait := listenBackoffMin
	for {
		began := time.Now()
		err := n.listenOnce(ctx, handlers)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(began) >= listenBackoffReset {
			wait = listenBackoffMin
		}
		n.log.Warn("postgres: lost the connection that hears other replicas' notices; connecting again", "channel", n.channel, "retry_in", wait, "err", err)
		t := time.NewTimer(wait/2 + mrand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, listenBackoffMax)
	}
}

// listenOnce connects, listens and delivers until the connection or ctx
// ends. Once listening, it first calls every handler with "": whatever
// was sent before (while disconnected) may have been missed.
func (n *notifier) listenOnce(ctx context.Context, handlers map[string]func(key string)) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, n.cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{n.channel}.Sanitize()); err != nil {
		return err
	}
	n.listenPID.Store(conn.PgConn().PID())
	for _, h := range handlers {
		h("")
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		note, err := conn.WaitForNotification(wctx)
		quiet := wctx.Err() != nil
		cancel()
		switch {
		case err == nil:
			n.deliver(note.Payload, handlers)
		case ctx.Err() != nil:
			return ctx.Err()
		case quiet && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

func (n *notifier) deliver(payload string, handlers map[string]func(key string)) {
	sender, rest, _ := strings.Cut(payload, " ")
	if sender == n.sender {
		return
	}
	for _, item := range strings.Fields(rest) {
		topic, key, _ := strings.Cut(item, ":")
		if h := handlers[topic]; h != nil {
			h(key)
		}
	}
}
