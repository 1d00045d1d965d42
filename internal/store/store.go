// Package store is Airlock's storage seam: the types that are persisted and
// the one interface every storage driver implements. The drivers live in
// subpackages named for what they wrap (sqlite, postgres); storetest holds
// the conformance suite every driver must pass unchanged.
//
// Writes happen only inside Update, whose transaction refuses to commit a
// state change that appended no audit event: no change without its event,
// and, because both share the transaction, no event without its change.
//
// This package must not import net/http or any Airlock package but the
// root one.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"
)

// Store is the storage seam.
type Store interface {
	Reader

	// Update runs fn in one write transaction. Write transactions are
	// serialized whole — on SQLite by the single writer connection, on
	// PostgreSQL by the audit head's row lock, taken before fn runs — so
	// what fn reads is current until it commits, and two decisions on one
	// object end as one serial order of them would. The transaction
	// commits only if fn returns nil and, when fn changed state, appended
	// at least one audit event.
	//
	// A deadlock, a serialization failure or a connection lost before
	// COMMIT rolls the attempt back, and Update runs fn again (bounded,
	// with jittered backoff): fn must do its reads and writes through tx
	// and set what it returns afresh on every call. When the database
	// stays unreachable, or the connection is lost during COMMIT (the
	// change may or may not have been made), Update returns an error of
	// kind airlock.Unavailable saying which.
	Update(ctx context.Context, fn func(tx Tx) error) error

	// AuditCheckpointAdd stores a signed checkpoint. It is not an audit
	// event itself (that would grow the tree it signs); the note is the
	// record, and is published outside the database.
	AuditCheckpointAdd(ctx context.Context, c *Checkpoint) error

	// RunHeartbeat records that a worker still executes the given running
	// runs. Only those: a run the worker claimed but no longer executes
	// (its outcome could not be recorded, say) goes stale and is reaped,
	// although the worker lives.
	// RunOutputAppend stores output chunks of the attempt lease names,
	// and refuses them (ErrLeaseLost) unless that attempt still holds the
	// run. Both are bookkeeping outside Update: output is made
	// tamper-evident by the digest in the run's final audit event, and
	// heartbeats are liveness, not state.
	RunHeartbeat(ctx context.Context, workerID string, runIDs []string, at time.Time) error
	RunOutputAppend(ctx context.Context, lease Lease, chunks []*OutputChunk) error

	// LoginFailureTally counts a failed or throttled sign-in in its
	// source's open report and reports whether there was one; without
	// one it changes nothing, and the caller audits the attempt and opens
	// a report (LoginReportRestart). Bookkeeping outside Update: what it
	// counts is recorded by the summary event that closes the report.
	LoginFailureTally(ctx context.Context, t LoginTally) (bool, error)

	// SessionTouch and TokenTouch record last use. They are bookkeeping,
	// not security-relevant state changes, so they run outside Update and
	// leave no audit event.
	SessionTouch(ctx context.Context, id string, at time.Time) error
	TokenTouch(ctx context.Context, id string, at time.Time) error

	// The notification outbox and its deliveries: bookkeeping of the
	// dispatcher, outside Update (the audit event that caused a
	// notification is its record). SetOutboxTypes chooses the audit event
	// types that put a row in the outbox, in their transaction; none by
	// default. Claims take rows whose lease has run out (or never had
	// one) for owner until the given time; Expand, Done and Failed act
	// only while owner still holds the lease.
	SetOutboxTypes(types []string)
	// OutboxAdd adds a reminder (ID chosen so that one is made once);
	// false when it exists.
	OutboxAdd(ctx context.Context, e *OutboxEntry) (bool, error)
	OutboxClaim(ctx context.Context, owner string, now, until time.Time, limit int) ([]*OutboxEntry, error)
	// OutboxExpand stores an entry's deliveries and marks it done; a
	// lease lost meanwhile is ErrLeaseLost.
	OutboxExpand(ctx context.Context, id, owner string, ds []*Delivery, at time.Time) error
	DeliveryClaim(ctx context.Context, owner string, now, until time.Time, limit int) ([]*Delivery, error)
	DeliveryDone(ctx context.Context, owner string, ids []string, at time.Time) error
	// DeliveryFailed records a failed attempt: retried at next, or a dead
	// letter.
	DeliveryFailed(ctx context.Context, owner, id, lastError string, next time.Time, dead bool) error
	// SubscriptionSet records a person's choices (a preference, not
	// audited).
	SubscriptionSet(ctx context.Context, subs []*Subscription) error

	// Stats reads the backlogs operators watch — runs waiting, deliveries
	// not made, the newest signed checkpoint — in a few indexed reads:
	// metrics call it at each scrape. It describes the database, so every
	// replica reads the same.
	Stats(ctx context.Context) (*Stats, error)

	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// SchemaVersion is the highest migration applied.
	SchemaVersion(ctx context.Context) (int, error)
	// DBs exposes the connection pools by name for metrics.
	DBs() map[string]*sql.DB
	Close() error
}

// Notifier carries notices between the replicas that share a database,
// so that one learns at once what another changed: new output of a run,
// a run queued, identities changed. Only a store several processes share
// implements it (PostgreSQL, by LISTEN/NOTIFY); a store of one process
// (SQLite) has no one to tell. A notice is a hint to read the store
// again, never data, and may be lost: whoever acts on notices also
// looks on a timer, which bounds how stale a lost one leaves it.
type Notifier interface {
	// Publish sends each key under topic to the other replicas'
	// listeners, after what it announces is committed. It never blocks:
	// notices are coalesced in bounded memory and sent in the
	// background, and too many keys of one topic become the key "".
	// Topics are short words; keys contain no spaces; the key "" means
	// "any key of this topic".
	Publish(topic string, keys ...string)
	// Listen passes each notice other replicas publish to
	// handlers[topic], until ctx ends, over one connection of its own,
	// made again with backoff when lost. Whenever it (re)connects,
	// notices may have been missed, so it calls every handler with the
	// key "". Handlers run on the listening goroutine and must not block.
	Listen(ctx context.Context, handlers map[string]func(key string)) error
}

// Reader holds the read methods, usable on a Store and inside a Tx.
type Reader interface {
	UserGetByID(ctx context.Context, id string) (*User, error)
	UserGetByUsername(ctx context.Context, username string) (*User, error)
	UserGetBySubject(ctx context.Context, issuer, subject string) (*User, error)
	UserList(ctx context.Context) ([]*User, error)

	GroupGetByName(ctx context.Context, name string) (*Group, error)
	GroupList(ctx context.Context) ([]*Group, error)
	GroupListForUser(ctx context.Context, userID string) ([]*Group, error)
	GroupMemberList(ctx context.Context, groupID string) ([]*GroupMember, error)
	// UserChangeList lists proposed user changes newest first; status may
	// be empty for all.
	UserChangeGet(ctx context.Context, id string) (*UserChange, error)
	UserChangeList(ctx context.Context, status string) ([]*UserChange, error)
	// AccountLinks lists the links that name userID on either side.
	AccountLinks(ctx context.Context, userID string) ([]*AccountLink, error)
	DeliveryGet(ctx context.Context, id string) (*Delivery, error)
	// DeliveryList lists deliveries newest first.
	DeliveryList(ctx context.Context, p DeliveryListParams) ([]*Delivery, error)
	SubscriptionList(ctx context.Context, userID string) ([]*Subscription, error)
	// ChatLinkList lists the chat accounts linked to userID, oldest
	// first; ChatLinkGet finds the link of one chat user.
	ChatLinkList(ctx context.Context, userID string) ([]*ChatLink, error)
	ChatLinkGet(ctx context.Context, provider, teamID, externalID string) (*ChatLink, error)

	TokenGetByHash(ctx context.Context, hash []byte) (*Token, error)
	TokenGetByID(ctx context.Context, id string) (*Token, error)
	TokenListForUser(ctx context.Context, userID string) ([]*Token, error)

	SessionGetByHash(ctx context.Context, hash []byte) (*Session, error)
	// LoginFailureStats counts failed logins since a time: on one
	// account from one source address, from the address, on the account.
	LoginFailureStats(ctx context.Context, account, addr string, since time.Time) (*LoginFailureStats, error)
	// LoginReportsClosed lists the source addresses whose login report's
	// window started at or before openSince.
	LoginReportsClosed(ctx context.Context, openSince time.Time) ([]string, error)

	ProcedureGetByName(ctx context.Context, name string) (*Procedure, error)
	ProcedureGetByID(ctx context.Context, id string) (*Procedure, error)
	ProcedureList(ctx context.Context) ([]*Procedure, error)
	ProcedureVersionGet(ctx context.Context, id string) (*ProcedureVersion, error)
	// ProcedureVersionList lists versions oldest first, filtered by the
	// non-empty fields of p.
	ProcedureVersionList(ctx context.Context, p ProcedureVersionListParams) ([]*ProcedureVersion, error)
	ReviewList(ctx context.Context, versionID string) ([]*Review, error)

	PolicyVersionGet(ctx context.Context, id string) (*PolicyVersion, error)
	// PolicyVersionList lists policy versions newest first; status may be
	// empty for all.
	PolicyVersionList(ctx context.Context, status string) ([]*PolicyVersion, error)

	NodeGet(ctx context.Context, name string) (*Node, error)
	// NodesNamed returns the nodes of those names that exist, by name:
	// a fan-out's targets in a few statements, not one each.
	NodesNamed(ctx context.Context, names []string) (map[string]*Node, error)
	NodeList(ctx context.Context) ([]*Node, error)
	SecretGet(ctx context.Context, name string) (*SecretRecord, error)
	SecretList(ctx context.Context) ([]*SecretRecord, error)

	RunGet(ctx context.Context, id string) (*Run, error)
	// RunState reads what a run's viewers poll for — its status, error
	// and approvals required — without the rest of the run.
	RunState(ctx context.Context, id string) (*RunState, error)
	RunGetByIdempotencyKey(ctx context.Context, requesterID, key string) (*Run, error)
	// RunQueued reports whether any run is queued (a read, before a claim
	// takes the writer).
	RunQueued(ctx context.Context) (bool, error)
	// RunList lists runs newest first, filtered by the non-empty fields.
	RunList(ctx context.Context, p RunListParams) ([]*Run, error)
	RunApprovalList(ctx context.Context, runID string) ([]*RunApproval, error)
	// StandingGet, StandingGetByName (not deleted) and StandingList
	// (kind and status may be empty for all; by name) read standing
	// requests; StandingApprovalList lists decisions oldest first;
	// StandingEventList lists what one did, newest first;
	// StandingEventCount counts its events at or after since.
	StandingGet(ctx context.Context, id string) (*Standing, error)
	StandingGetByName(ctx context.Context, kind, name string) (*Standing, error)
	StandingList(ctx context.Context, kind, status string) ([]*Standing, error)
	StandingApprovalList(ctx context.Context, standingID string) ([]*StandingApproval, error)
	StandingEventList(ctx context.Context, standingID string, limit int) ([]*StandingEvent, error)
	StandingEventCount(ctx context.Context, standingID string, since time.Time) (int, error)
	RunNodeList(ctx context.Context, runID string) ([]*RunNode, error)
	RunStepList(ctx context.Context, runID string) ([]*RunStep, error)
	// RunOutputList returns chunks with Seq > after, in order.
	RunOutputList(ctx context.Context, runID string, after int64, limit int) ([]*OutputChunk, error)
	// RunOutputRead calls fn with each stored output chunk of the run in
	// Seq order, as one stream: data is valid only during the call. It is
	// how verification hashes a run's output without holding it.
	RunOutputRead(ctx context.Context, runID string, fn func(seq int64, data []byte) error) error

	// AuditSize is the number of events in the log; positions are
	// 0..AuditSize-1 with no gaps.
	AuditSize(ctx context.Context) (int64, error)
	AuditGet(ctx context.Context, seq int64) (*AuditEvent, error)
	AuditList(ctx context.Context, p AuditListParams) ([]*AuditEvent, error)
	// AuditLeaves calls fn for each event with lo <= Seq < hi (hi <= 0:
	// no upper bound), in position order, with the stored columns as raw
	// bytes valid only during the call. It is the cheap way to read the
	// whole log (audit verify).
	AuditLeaves(ctx context.Context, lo, hi int64, fn func(*LeafRow) error) error
	// AuditHashes reads stored tree hashes by tlog index.
	AuditHashes(ctx context.Context, indexes []int64) ([][]byte, error)
	// AuditHashRange reads the stored hashes with lo <= index < hi, in
	// index order.
	AuditHashRange(ctx context.Context, lo, hi int64) ([]IndexedHash, error)
	// AuditCheckpoints lists signed checkpoints, smallest size first;
	// AuditCheckpointLatest is the largest, or nil when there is none.
	AuditCheckpoints(ctx context.Context) ([]*Checkpoint, error)
	AuditCheckpointLatest(ctx context.Context) (*Checkpoint, error)
}

// Tx is a write transaction.
type Tx interface {
	Reader

	UserInsert(ctx context.Context, u *User) error
	UserUpdate(ctx context.Context, u *User) error

	GroupInsert(ctx context.Context, g *Group) error
	GroupMemberAdd(ctx context.Context, m *GroupMember) error
	GroupMemberRemove(ctx context.Context, groupID, userID string) error
	UserChangeInsert(ctx context.Context, c *UserChange) error
	// UserChangeDecide records a decision on a pending change: its new
	// status, who decided, their comment and when.
	UserChangeDecide(ctx context.Context, c *UserChange) error
	AccountLinkAdd(ctx context.Context, l *AccountLink) error
	// DeliveryRetry puts a dead letter back in the queue (an admin's act).
	DeliveryRetry(ctx context.Context, id string, at time.Time) error
	// ChatLinkAdd links a chat user (Conflict when they are linked
	// already); ChatLinkDelete unlinks one of userID's chat users.
	// ChatLinkCodeAdd stores a link code and forgets the expired ones;
	// ChatLinkCodeTake removes the code with this hash and returns it,
	// expired or not (NotFound when there is none), so it works once.
	// ChatSeenAdd records a chat request's signature, forgets those seen
	// before pruneBefore, and reports false when it was seen already
	// (a replay). Codes and signatures are bookkeeping that needs no
	// audit event of its own.
	ChatLinkAdd(ctx context.Context, l *ChatLink) error
	ChatLinkDelete(ctx context.Context, userID, provider, teamID, externalID string) error
	ChatLinkCodeAdd(ctx context.Context, c *ChatLinkCode, now time.Time) error
	ChatLinkCodeTake(ctx context.Context, hash []byte) (*ChatLinkCode, error)
	ChatSeenAdd(ctx context.Context, signature string, at, pruneBefore time.Time) (bool, error)

	TokenInsert(ctx context.Context, t *Token) error
	TokenRevoke(ctx context.Context, id string, at time.Time) error

	SessionInsert(ctx context.Context, s *Session) error
	SessionRevoke(ctx context.Context, id string, at time.Time) error
	// SessionRevokeForUser revokes every live session of a user but
	// exceptID (may be empty) and returns how many it revoked.
	SessionRevokeForUser(ctx context.Context, userID, exceptID string, at time.Time) (int64, error)
	// LoginFailureAdd records a failed login and forgets those before
	// pruneBefore; LoginFailuresClear forgets the failures on an account
	// from one source address (a successful login from there: others'
	// failures on the account stay). Both go with the login's audit event.
	LoginFailureAdd(ctx context.Context, account, addr string, at, pruneBefore time.Time) error
	LoginFailuresClear(ctx context.Context, account, addr string) error
	// LoginReportRestart starts a new report window for addr at at and
	// returns what the closed one counted (nil when nothing); a report
	// still open (its window started after openSince) is kept. With
	// attempts counted, the caller appends their summary event.
	LoginReportRestart(ctx context.Context, addr string, at, openSince time.Time) (*LoginReport, error)
	// LoginReportTake removes addr's report if its window started at or
	// before openSince and returns it when it counted attempts.
	LoginReportTake(ctx context.Context, addr string, openSince time.Time) (*LoginReport, error)

	ProcedureInsert(ctx context.Context, p *Procedure) error
	ProcedureUpdate(ctx context.Context, p *Procedure) error
	// ProcedureVersionInsert stores a new version; versions are
	// immutable apart from their status.
	ProcedureVersionInsert(ctx context.Context, v *ProcedureVersion) error
	ProcedureVersionSetStatus(ctx context.Context, id, status string, decidedAt time.Time) error
	ReviewInsert(ctx context.Context, r *Review) error

	PolicyVersionInsert(ctx context.Context, v *PolicyVersion) error
	// PolicyVersionDecide records a decision on a version: its new status,
	// who decided, their comment and when.
	PolicyVersionDecide(ctx context.Context, v *PolicyVersion) error

	NodeUpsert(ctx context.Context, n *Node) error
	NodeDelete(ctx context.Context, name string) error
	SecretPut(ctx context.Context, r *SecretRecord) error
	SecretDelete(ctx context.Context, name string) error

	RunInsert(ctx context.Context, r *Run) error
	// RunUpdate writes a run's mutable fields (status, times, worker,
	// outcome, secret parameters).
	RunUpdate(ctx context.Context, r *Run) error
	// RunClaim moves the oldest queued run whose lock is free to running
	// for workerID and takes its lock; nil when there is none.
	RunClaim(ctx context.Context, workerID string, at time.Time) (*Run, error)
	RunLockRelease(ctx context.Context, runID string) error
	RunApprovalInsert(ctx context.Context, a *RunApproval) error
	// StandingInsert stores a standing request (Conflict when a live one
	// of its kind has its name); StandingUpdate writes its mutable fields
	// (version, digest, binding, targets, approvals required, status and
	// reason, cursor, proposed, updated). StandingEventInsert records one outcome
	// per key: a second for the same key is Conflict.
	StandingInsert(ctx context.Context, s *Standing) error
	StandingUpdate(ctx context.Context, s *Standing) error
	StandingApprovalInsert(ctx context.Context, a *StandingApproval) error
	StandingEventInsert(ctx context.Context, e *StandingEvent) error
	RunNodePut(ctx context.Context, n *RunNode) error
	RunStepPut(ctx context.Context, s *RunStep) error
	// RunHeld returns an error wrapping ErrLeaseLost unless the run is
	// running under the lease's worker and attempt; on PostgreSQL it
	// also keeps the run from changing hands until the transaction ends.
	// It reads three columns, not the run.
	RunHeld(ctx context.Context, lease Lease) error
	// RunOutputPut stores output chunks of the lease's attempt (the
	// caller has checked the lease in this transaction): the last batch
	// of a run goes in with its outcome.
	RunOutputPut(ctx context.Context, lease Lease, chunks []*OutputChunk) error
	// RunOutputPrune deletes the output of at most limit runs that
	// finished before t, and returns those runs (oldest first) and how
	// many chunks went. Runs keep their output digest.
	RunOutputPrune(ctx context.Context, finishedBefore time.Time, limit int) (runIDs []string, chunks int64, err error)

	// AuditAppend stores the event in the transaction, at the next
	// position (gap-free, in the order appended), and sets e.Seq by the
	// time the transaction commits; a read of the log in the
	// transaction sees it. There is no update or delete: the log is
	// append-only.
	AuditAppend(ctx context.Context, e *AuditEvent) error
}

// Account kinds: a person signs in; a service account only holds API
// tokens, and never approves or reviews.
const (
	AccountPerson  = "person"
	AccountService = "service"
)

// User is a person or service account.
type User struct {
	ID       string
	Username string
	// Kind is AccountPerson or AccountService; OwnerTeam is the team
	// that owns a service account.
	Kind               string
	OwnerTeam          string
	DisplayName        string
	Email              string
	PasswordHash       string // argon2id PHC string; empty for SSO-only users
	MustChangePassword bool
	Disabled           bool
	Issuer             string // OIDC issuer for SSO users, empty for local
	Subject            string // OIDC subject for SSO users
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Group is a named set of users that policies talk about.
type Group struct {
	ID          string
	Name        string
	Description string
	CreatedAt   time.Time
}

// Membership sources: managed by an admin, or mapped from SSO claims at
// each login (and replaced then).
const (
	MemberManual = "manual"
	MemberSSO    = "sso"
)

// User changes are proposed by one admin and take effect when another
// approves: creating a user, adding a member to a group, enabling a
// disabled user, resetting a local user's password.
const (
	UserChangeCreate        = "create_user"
	UserChangeAddMember     = "add_member"
	UserChangeEnable        = "enable_user"
	UserChangeResetPassword = "reset_password"

	UserChangePending   = "pending"
	UserChangeApproved  = "approved"
	UserChangeRejected  = "rejected"
	UserChangeWithdrawn = "withdrawn"
)

// UserChange is a proposed change to who may sign in or what groups they
// are in.
type UserChange struct {
	ID       string
	Kind     string
	Username string
	// Group is the group of an add_member change.
	Group string
	// DisplayName, Email and Groups describe the user of a create_user
	// change.
	DisplayName string
	Email       string
	Groups      []string
	// AccountKind and OwnerTeam: a create_user change may create a
	// service account owned by a team.
	AccountKind string
	OwnerTeam   string
	Status      string
	AuthorID    string
	AuthorName  string
	// UserID is the user the change applied to, once approved.
	UserID          string
	DecidedByID     string
	DecidedByName   string
	DecisionComment string
	CreatedAt       time.Time
	DecidedAt       time.Time
}

// AccountLink records that ByID brought UserID's account into being or
// granted it a group (Reason says which): for separation of duties the
// two count as one person. EventID is the audit event that recorded it.
type AccountLink struct {
	UserID    string
	ByID      string
	ByName    string
	Reason    string
	EventID   string
	CreatedAt time.Time
}

// Stats is a snapshot of the database's backlogs, for metrics.
type Stats struct {
	// Runs waiting or executing, by status: RunQueued, RunPending (for
	// approval), RunRunning.
	RunsQueued  int64
	RunsPending int64
	RunsRunning int64
	// OutboxOpen counts notifications not yet turned into deliveries;
	// DeliveriesPending the deliveries not yet made (including those
	// waiting to be tried again); DeliveriesDead the dead letters.
	OutboxOpen        int64
	DeliveriesPending int64
	DeliveriesDead    int64
	// AuditSize is the number of events in the log; CheckpointSize and
	// CheckpointAt describe the newest signed checkpoint (zero: none).
	AuditSize      int64
	CheckpointSize int64
	CheckpointAt   time.Time
}

// OutboxEntry is a notification waiting to be turned into deliveries:
// an audit event's (EventSeq its position) or a reminder's (EventSeq -1).
type OutboxEntry struct {
	ID        string
	EventSeq  int64
	Type      string
	Subject   string
	CreatedAt time.Time
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)

// Delivery is one message of a notification to one channel target.
type Delivery struct {
	ID       string
	OutboxID string
	Kind     string
	Channel  string
	Target   string
	UserID   string
	// Message is the message as built at expansion (JSON; never a
	// secret).
	Message     []byte
	Status      string
	Attempts    int
	NextAt      time.Time
	LastError   string
	CreatedAt   time.Time
	DeliveredAt time.Time
}

// DeliveryListParams filters DeliveryList; empty fields match all.
type DeliveryListParams struct {
	Status   string
	OutboxID string
	Limit    int
}

// Subscription is a person's choice for one kind of notification on one
// channel.
type Subscription struct {
	UserID    string
	Kind      string
	Channel   string
	Enabled   bool
	UpdatedAt time.Time
}

// GroupMember links a user to a group.
type GroupMember struct {
	GroupID   string
	UserID    string
	Source    string
	CreatedAt time.Time
}

// Token is an API token. Only the SHA-256 of the secret is stored.
type Token struct {
	ID         string
	UserID     string
	Name       string
	Hash       []byte
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	LastUsedAt time.Time // zero: never used
	RevokedAt  time.Time // zero: live
	// Scope limits what the token may do beyond what policy allows its
	// owner (identity.ParseScope); empty: no limit.
	Scope []string
}

// Session is a browser session. Only the SHA-256 of the cookie value is
// stored; the CSRF token is derived from the session secret.
type Session struct {
	ID         string
	UserID     string
	Hash       []byte
	Method     string // password | sso
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // absolute expiry
	RevokedAt  time.Time
	SourceAddr string
	UserAgent  string
}

// AuditEvent is one leaf of the audit log. Type is a stable
// "resource.verb" name.
type AuditEvent struct {
	Seq        int64
	ID         string
	Time       time.Time
	Type       string
	ActorID    string
	ActorName  string
	Subject    string
	Outcome    string // success | failure | denied
	RequestID  string
	SourceAddr string
	Details    json.RawMessage
}

// AuditListParams filters AuditList. After is exclusive; Limit 0 means 100.
type AuditListParams struct {
	After int64 // list events with Seq > After; -1 for from the start
	// Before, when positive, lists only events with Seq < Before.
	Before  int64
	Limit   int
	Type    string
	Actor   string
	Subject string
	// From and To, when set, list only events with From <= Time < To.
	From, To time.Time
	// Newest lists the Limit matching events with the greatest Seq,
	// newest first, instead of the oldest in order: a page of the log's
	// end, and with Before the page before it.
	Newest bool
}

// Procedure is a named, owned operation; its definitions are versions.
type Procedure struct {
	ID   string
	Name string
	// Owner is the owning team; fixed once a version is approved.
	Owner           string
	OwnerFixed      bool
	ActiveVersionID string // empty until the first approval
	RetiredAt       time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Version statuses.
const (
	VersionProposed   = "proposed"
	VersionApproved   = "approved" // the active version
	VersionSuperseded = "superseded"
	VersionRetired    = "retired"
	VersionRejected   = "rejected"
	VersionWithdrawn  = "withdrawn"
)

// ProcedureVersion is one immutable definition.
type ProcedureVersion struct {
	ID            string
	ProcedureID   string
	ProcedureName string // joined from procedures on reads
	Number        int
	Digest        string
	Definition    []byte // canonical JSON
	Risk          string
	Status        string
	AuthorID      string
	AuthorName    string
	SourceFile    string
	CreatedAt     time.Time
	DecidedAt     time.Time
}

// ProcedureVersionListParams filters ProcedureVersionList.
type ProcedureVersionListParams struct {
	ProcedureID string
	Status      string
}

// Review decisions.
const (
	ReviewApprove = "approve"
	ReviewReject  = "reject"
)

// Review is one reviewer's decision on one version digest.
type Review struct {
	ID           string
	VersionID    string
	Digest       string
	ReviewerID   string
	ReviewerName string
	Decision     string
	Comment      string
	// ReviewerGroups are the reviewer's groups when they reviewed; the
	// quorum counts them.
	ReviewerGroups []string
	CreatedAt      time.Time
}

// Policy version statuses. Exactly one version is active once the
// store is bootstrapped.
const (
	PolicyProposed   = "proposed"
	PolicyActive     = "active"
	PolicySuperseded = "superseded"
	PolicyRejected   = "rejected"
	PolicyWithdrawn  = "withdrawn"
)

// PolicyVersion is one complete Cedar policy set.
type PolicyVersion struct {
	ID              string
	Number          int
	Digest          string
	Text            string
	Description     string
	Status          string
	AuthorID        string
	AuthorName      string
	DecidedByID     string
	DecidedByName   string
	DecisionComment string
	CreatedAt       time.Time
	DecidedAt       time.Time
}

// Node transports.
const (
	TransportSSH   = "ssh"
	TransportLocal = "local"
)

// Node is an execution target.
type Node struct {
	Name        string
	Address     string
	Port        int
	User        string
	Environment string
	Tags        []string
	Attributes  map[string]string
	// HostKey is the pinned SSH host key, authorized_keys format.
	HostKey string
	// Credential names the secret holding the SSH private key or
	// password.
	Credential string
	Transport  string
	Source     string // file | api
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// SecretRecord is an encrypted secret value.
type SecretRecord struct {
	Name       string
	Ciphertext []byte
	KeyID      string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	UpdatedBy  string
	// ScopeTeams and ScopeProcedures say which procedures may name the
	// secret in a step: those owned by the teams, and those named (a
	// trailing '*' matches a prefix). Both empty: none may.
	ScopeTeams      []string
	ScopeProcedures []string
	// ScopeUpdatedAt and ScopeUpdatedBy: when and by whom the scope was
	// last set ("(upgrade)" for scopes derived at the upgrade to schema
	// 11).
	ScopeUpdatedAt time.Time
	ScopeUpdatedBy string
}

// Run statuses.
const (
	RunPending   = "pending_approval"
	RunQueued    = "queued"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunCanceled  = "canceled"
	RunTimedOut  = "timed_out"
	RunDenied    = "denied"
	RunExpired   = "expired"
)

// RunFinal reports whether status is terminal.
func RunFinal(status string) bool {
	switch status {
	case RunSucceeded, RunFailed, RunCanceled, RunTimedOut, RunDenied, RunExpired:
		return true
	}
	return false
}

// Run is one execution of an approved version.
type Run struct {
	ID            string
	ProcedureID   string
	ProcedureName string
	VersionID     string
	Digest        string
	Environment   string
	Params        []byte // JSON object of non-secret typed values
	SecretParams  []byte // sealed JSON object; nil once the run is over
	RequesterID   string
	RequesterName string
	Reason        string
	Ticket        string
	Status        string
	Targets       []string
	LockKey       string
	// ApprovalsRequired is how many approvals from other people the run
	// needs before it may start.
	ApprovalsRequired int
	// Binding is the SHA-256 of what an approval approves: digest,
	// parameters and targets.
	Binding        string
	Idempotent     bool
	IdempotencyKey string
	// StandingID names the schedule or trigger that started the run
	// under its standing approval; empty for a person's request.
	StandingID string
	// Try: the run executes a proposed, unreviewed version in a try
	// environment.
	Try         bool
	CreatedAt   time.Time
	ExpiresAt   time.Time
	QueuedAt    time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	HeartbeatAt time.Time
	WorkerID    string
	Attempt     int
	// CancelRequested tells the worker running it, on any replica, to
	// stop it.
	CancelRequested bool
	Error           string
	OutputBytes     int64
	OutputTruncated bool
	OutputDigest    string
}

// RunListParams filters RunList.
type RunListParams struct {
	Status        string
	ProcedureName string
	RequesterID   string
	// HeartbeatBefore lists running runs whose last heartbeat is older.
	HeartbeatBefore time.Time
	Limit           int
}

// RunApproval is one person's decision on a pending run.
type RunApproval struct {
	ID           string
	RunID        string
	ApproverID   string
	ApproverName string
	Decision     string // approve | deny
	Comment      string
	Binding      string
	CreatedAt    time.Time
}

// Standing request kinds and statuses. A standing request is proposed,
// approved by others once (bound like a run approval), and then starts
// runs unattended while it is active; a new version of its procedure,
// changed targets or a policy that no longer permits it suspends it
// until it is approved again.
const (
	StandingSchedule = "schedule"
	StandingTrigger  = "trigger"

	StandingPending   = "pending_approval"
	StandingActive    = "active"
	StandingPaused    = "paused"
	StandingSuspended = "suspended"
	StandingDenied    = "denied"
	StandingDeleted   = "deleted"
)

// Standing is a schedule or an event trigger.
type Standing struct {
	ID            string
	Kind          string
	Name          string
	ProcedureID   string
	ProcedureName string
	Environment   string
	// Params are a schedule's parameters (JSON object of typed values).
	Params []byte
	// Spec is the kind's own definition (JSON): a schedule's cron, time
	// zone, missed-tick and overlap rules; a trigger's preset, mapping,
	// authentication scheme and limits.
	Spec []byte
	// Secret is a trigger's sealed signing or bearer secret.
	Secret []byte
	// VersionID, Digest, Binding and Targets are what the approvals
	// approve: the version in service, and for a schedule its run
	// binding (digest, parameters, targets).
	VersionID         string
	Digest            string
	Binding           string
	Targets           []string
	ApprovalsRequired int
	Status            string
	StatusReason      string
	ProposerID        string
	ProposerName      string
	// AccountID and AccountName: the service account a trigger's runs
	// are requested as.
	AccountID   string
	AccountName string
	// Cursor: a schedule's ticks up to and including it are dealt with.
	Cursor time.Time
	// ProposedAt: when it was (last) proposed; approvals before it do
	// not count.
	ProposedAt time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// StandingApproval is one person's decision on a standing request.
type StandingApproval struct {
	ID           string
	StandingID   string
	ApproverID   string
	ApproverName string
	Decision     string // approve | deny
	Comment      string
	Binding      string
	CreatedAt    time.Time
}

// StandingEvent is one thing a standing request did: a schedule's tick
// (Key its time, RFC 3339) or a trigger's alert (Key its dedup key).
type StandingEvent struct {
	StandingID string
	Key        string
	At         time.Time
	// Outcome: started, requested, skipped_overlap, missed, suspended,
	// ignored, refused.
	Outcome string
	RunID   string
	Detail  string
}

// RunNode is a run's outcome on one node.
type RunNode struct {
	RunID      string
	Node       string
	Status     string
	ExitCode   int
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// RunState is the part of a run that changes while viewers watch it.
type RunState struct {
	Status            string
	Error             string
	ApprovalsRequired int
}

// Lease names the attempt of a run that a worker executes. Every write
// the attempt makes names it, and is refused once the run is not running
// under that worker and attempt any more: reaped, requeued, cancelled by
// someone else, or claimed again.
type Lease struct {
	RunID    string
	WorkerID string
	Attempt  int
}

// ErrLeaseLost is returned for a write by an attempt that no longer
// holds its run.
var ErrLeaseLost = errors.New("this attempt no longer holds the run")

// RunStep is one step's outcome on one node, in one attempt of the run.
type RunStep struct {
	RunID      string
	Attempt    int
	Node       string
	Index      int
	Step       string
	Status     string
	ExitCode   int
	StartedAt  time.Time
	FinishedAt time.Time
}

// Output streams.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamSystem = "system" // Airlock's own notes: truncation, node errors
)

// OutputChunk is a piece of a run's output.
type OutputChunk struct {
	RunID string
	// Seq numbers the run's chunks across its attempts: a later attempt
	// goes on after the earlier one's.
	Seq       int64
	Attempt   int
	Node      string
	Stream    string
	Data      []byte
	CreatedAt time.Time
}

// Checkpoint is a signed tree head.
type Checkpoint struct {
	Size      int64
	RootHash  string // base64, as in the note
	Note      string // the signed note
	CreatedAt time.Time
}

// IndexedHash is a stored tree hash with its tlog index.
type IndexedHash struct {
	Index int64
	Hash  []byte
}
