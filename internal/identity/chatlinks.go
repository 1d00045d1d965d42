package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// A chat account (a Slack user) acts as an Airlock user only once that
// user has linked it, explicitly: their account page issues a one-time
// code, and they type it into the chat app, whose signed request names
// the chat user. Nothing is ever matched by display name or email.

// ChatLinkCodeTTL is how long a link code works.
const ChatLinkCodeTTL = 10 * time.Minute

// codeAlphabet leaves out the letters and digits people confuse (0/O,
// 1/I/L, U/V).
const codeAlphabet = "ABCDEFGHJKMNPQRSTWXYZ23456789"

// ChatLinkCode is a newly issued link code, shown once.
type ChatLinkCode struct {
	Code      string
	ExpiresAt time.Time
}

// normalizeCode uppercases a typed code and drops the separators people
// type or paste with it.
func normalizeCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t':
			return -1
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, code)
}

func codeHash(code string) []byte { return hashSecret("chatlink:" + normalizeCode(code)) }

// IssueChatLinkCode gives p a one-time code (12 characters from a
// 29-letter alphabet: 58 bits) that links the chat account that types
// it to p within ChatLinkCodeTTL. Only its hash is stored.
func (s *Service) IssueChatLinkCode(ctx context.Context, p *Principal) (*ChatLinkCode, error) {
	if p.Scope != nil {
		// A linked chat account acts with the person's full rights.
		return nil, airlock.Errorf(airlock.Forbidden, "a token with a scope cannot link a chat account; sign in or use an unscoped token")
	}
	if p.Service {
		// Chat is where people approve; a service account never does.
		return nil, airlock.Errorf(airlock.Forbidden, "a service account cannot link a chat account")
	}
	var sb strings.Builder
	for n, buf := 0, make([]byte, 1); n < 12; {
		rand.Read(buf)
		if int(buf[0]) >= 256/len(codeAlphabet)*len(codeAlphabet) {
			continue // keep every letter equally likely
		}
		if n == 6 {
			sb.WriteByte('-')
		}
		sb.WriteByte(codeAlphabet[int(buf[0])%len(codeAlphabet)])
		n++
	}
	now := s.now().UTC()
	out := &ChatLinkCode{Code: sb.String(), ExpiresAt: now.Add(ChatLinkCodeTTL)}
	err := s.update(ctx, func(tx store.Tx) error {
		if err := tx.ChatLinkCodeAdd(ctx, &store.ChatLinkCode{Hash: codeHash(out.Code), UserID: p.UserID, ExpiresAt: out.ExpiresAt}, now); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ChatLinkCode, p.Actor(), p.UserID, audit.Success,
			map[string]any{"expires_at": out.ExpiresAt}))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ChatAccount names a chat user: provider (slack), workspace (team) and
// the user's ID there.
type ChatAccount struct {
	Provider, TeamID, ExternalID string
}

func (a ChatAccount) details() map[string]any {
	return map[string]any{"provider": a.Provider, "team_id": a.TeamID, "external_id": a.ExternalID}
}

// ErrUnknownLinkCode is the answer to a code that was never issued or
// was used already. It is not audited here: the caller counts it with
// its other refusals of unauthenticated requests, so that guessing codes
// cannot flood the audit log.
var ErrUnknownLinkCode = airlock.Errorf(airlock.NotFound, "this code is unknown or was used already: get a new one from your Airlock account page")

// LinkChat links the chat account a to the owner of code, and returns
// that user. The code is used up whatever happens. Refused, and audited
// as chat.link_denied: an expired code, a disabled owner, and a chat
// account linked to another Airlock account already. Linking an account
// linked to the same user again changes nothing.
func (s *Service) LinkChat(ctx context.Context, a ChatAccount, code string) (*store.User, error) {
	if normalizeCode(code) == "" {
		return nil, ErrUnknownLinkCode
	}
	now := s.now().UTC()
	var u *store.User
	var denied *airlock.Error
	err := s.update(ctx, func(tx store.Tx) error {
		u, denied = nil, nil
		c, err := tx.ChatLinkCodeTake(ctx, codeHash(code))
		if err != nil {
			return err
		}
		if u, err = tx.UserGetByID(ctx, c.UserID); err != nil {
			return err
		}
		existing, err := tx.ChatLinkGet(ctx, a.Provider, a.TeamID, a.ExternalID)
		switch {
		case err == nil:
		case airlock.ErrorKind(err) == airlock.NotFound:
			existing = nil
		default:
			return err
		}
		switch {
		case now.After(c.ExpiresAt):
			denied = airlock.Errorf(airlock.Invalid, "this code expired at %s: get a new one from your Airlock account page", c.ExpiresAt.Format("15:04 UTC"))
		case u.Disabled:
			denied = airlock.Errorf(airlock.Forbidden, "the Airlock account of this code is disabled")
		case existing != nil && existing.UserID != u.ID:
			denied = airlock.Errorf(airlock.Conflict, "this %s account is linked to another Airlock account already: unlink it there first", a.Provider)
		case existing != nil:
			return nil // linked already; the code is spent, nothing changed
		}
		d := a.details()
		if denied != nil {
			d["reason"] = denied.Message
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ChatLinkDenied, audit.Actor{ID: u.ID, Name: u.Username}, u.ID, audit.Denied, d))
		}
		if err := tx.ChatLinkAdd(ctx, &store.ChatLink{UserID: u.ID, Provider: a.Provider, TeamID: a.TeamID, ExternalID: a.ExternalID, CreatedAt: now}); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ChatLink, audit.Actor{ID: u.ID, Name: u.Username}, u.ID, audit.Success, d))
	})
	if airlock.ErrorKind(err) == airlock.NotFound {
		return nil, ErrUnknownLinkCode
	}
	if err != nil {
		return nil, err
	}
	if denied != nil {
		return nil, denied
	}
	return u, nil
}

// ChatLinks lists p's linked chat accounts.
func (s *Service) ChatLinks(ctx context.Context, p *Principal) ([]*store.ChatLink, error) {
	return s.store.ChatLinkList(ctx, p.UserID)
}

// UnlinkChat removes one of p's chat links.
func (s *Service) UnlinkChat(ctx context.Context, p *Principal, a ChatAccount) error {
	now := s.now().UTC()
	return s.update(ctx, func(tx store.Tx) error {
		if err := tx.ChatLinkDelete(ctx, p.UserID, a.Provider, a.TeamID, a.ExternalID); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ChatUnlink, p.Actor(), p.UserID, audit.Success, a.details()))
	})
}

// unlinkAllChats removes, in tx, every chat account linked to the user:
// a link acts as the user as a token does, so what revokes the user's
// tokens ends their links too. It returns how many it removed.
func unlinkAllChats(ctx context.Context, tx store.Tx, userID string) (int, error) {
	ls, err := tx.ChatLinkList(ctx, userID)
	if err != nil {
		return 0, err
	}
	for _, l := range ls {
		if err := tx.ChatLinkDelete(ctx, userID, l.Provider, l.TeamID, l.ExternalID); err != nil {
			return 0, err
		}
	}
	return len(ls), nil
}

// ErrChatNotLinked is the answer to a chat account no Airlock user has
// linked.
var ErrChatNotLinked = errors.New("chat account not linked")

// ChatPrincipal is the Airlock user a linked chat account acts as, with
// their groups as stored now. It returns ErrChatNotLinked for an
// account nobody linked, and refuses a disabled user, and one who must
// change their password first.
func (s *Service) ChatPrincipal(ctx context.Context, a ChatAccount) (*Principal, error) {
	l, err := s.store.ChatLinkGet(ctx, a.Provider, a.TeamID, a.ExternalID)
	if airlock.ErrorKind(err) == airlock.NotFound {
		return nil, ErrChatNotLinked
	}
	if err != nil {
		return nil, err
	}
	p, err := s.principal(ctx, l.UserID)
	if err != nil {
		if airlock.ErrorKind(err) == airlock.Unauthenticated {
			return nil, airlock.Errorf(airlock.Forbidden, "your Airlock account is disabled")
		}
		return nil, err
	}
	if p.MustChangePassword {
		return nil, airlock.Errorf(airlock.PasswordExpired, "change your Airlock password first")
	}
	p.Via = a.Provider
	return p, nil
}
