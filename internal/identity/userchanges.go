package identity

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// Who may sign in, and the groups that carry permissions, are under dual
// control like policy: one admin proposes creating a user, adding a
// member to a group, enabling a disabled user or resetting a local
// user's password, and the change takes effect only when another admin
// approves it. Taking access away —
// disabling a user, removing a member — is immediate.
//
// An account a person created, or granted a group, counts as that person
// for separation of duties (Linked): it cannot approve their requests or
// versions, nor make up a quorum with them.
//
// Exempt: the first admin (Bootstrap), the demo's users, and users and
// groups that single sign-on maps from the identity provider, whose
// administrators answer for them.

// UserChangeParams describe a proposed change. Kind decides which
// fields apply.
type UserChangeParams struct {
	Kind        string
	Username    string
	Group       string   // add_member
	DisplayName string   // create_user
	Email       string   // create_user
	Groups      []string // create_user
	// AccountKind (create_user) is store.AccountPerson (default) or
	// store.AccountService; a service account names its OwnerTeam, an
	// existing group.
	AccountKind string
	OwnerTeam   string
}

const maxProfileField = 200

// ProposeUserChange records a change for another admin to approve.
//
// Setting up: while the author is the only enabled account permitted
// manageUsers and no change has yet been approved by a second admin, the
// change takes effect at once, audited as such ("sole_admin": the
// evidence report lists it as an exception): the first admin must be able
// to create the second. Such a change links no accounts — the first two
// admins could otherwise never approve each other's changes. Once a
// second admin has approved a change, dual control never lapses: an admin
// left alone cannot change users.
func (s *Service) ProposeUserChange(ctx context.Context, p *Principal, in UserChangeParams) (*UserChangeResult, error) {
	if err := s.checkManageUsers(ctx, p); err != nil {
		return nil, err
	}
	if !ValidUsername(in.Username) {
		return nil, airlock.FieldError("username", "must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	switch in.Kind {
	case store.UserChangeCreate:
		if len(in.DisplayName) > maxProfileField {
			return nil, airlock.FieldError("display_name", "at most %d bytes", maxProfileField)
		}
		if len(in.Email) > maxProfileField {
			return nil, airlock.FieldError("email", "at most %d bytes", maxProfileField)
		}
		for _, g := range in.Groups {
			if !ValidUsername(g) {
				return nil, airlock.FieldError("groups", "%q is not a valid group name", g)
			}
		}
		in.Groups = slices.Compact(slices.Sorted(slices.Values(in.Groups)))
		switch in.AccountKind {
		case "", store.AccountPerson:
			in.AccountKind = store.AccountPerson
			if in.OwnerTeam != "" {
				return nil, airlock.FieldError("owner_team", "only a service account has an owner team")
			}
		case store.AccountService:
			if !ValidUsername(in.OwnerTeam) {
				return nil, airlock.FieldError("owner_team", "a service account needs the name of the group that owns it")
			}
		default:
			return nil, airlock.FieldError("kind", "expected %s or %s, got %q", store.AccountPerson, store.AccountService, in.AccountKind)
		}
	case store.UserChangeAddMember:
		if !ValidUsername(in.Group) {
			return nil, airlock.FieldError("group", "%q is not a valid group name", in.Group)
		}
	case store.UserChangeEnable:
	case store.UserChangeResetPassword:
		if in.Username == p.Username {
			return nil, airlock.FieldError("username", "change your own password on your account page, not by a reset")
		}
	default:
		return nil, airlock.FieldError("kind", "expected %s, %s, %s or %s", store.UserChangeCreate, store.UserChangeAddMember,
			store.UserChangeEnable, store.UserChangeResetPassword)
	}
	now := s.now().UTC()
	pw := RandomPassword()
	hash := HashPassword(pw)
	var res *UserChangeResult
	err := s.update(ctx, func(tx store.Tx) error {
		c := &store.UserChange{ID: airlock.NewID(airlock.PrefixUserChange, now), Kind: in.Kind, Username: in.Username, Group: in.Group,
			DisplayName: in.DisplayName, Email: in.Email, Groups: in.Groups, AccountKind: in.AccountKind, OwnerTeam: in.OwnerTeam,
			Status: store.UserChangePending, AuthorID: p.UserID, AuthorName: p.Username, CreatedAt: now}
		res = &UserChangeResult{Change: c} // Update may run this again
		if err := applicable(ctx, tx, c); err != nil {
			return err
		}
		pending, err := tx.UserChangeList(ctx, store.UserChangePending)
		if err != nil {
			return err
		}
		for _, o := range pending {
			if o.Kind == c.Kind && o.Username == c.Username && o.Group == c.Group {
				return airlock.Errorf(airlock.Conflict, "change %s, proposed by %s, already awaits approval: %s", o.ID, o.AuthorName, Describe(o))
			}
		}
		// Setting up alone makes the second admin, never a service
		// account: that always waits for another admin. A reset always
		// waits too: its one-time password goes to an approver other
		// than the author.
		sole := false
		if c.AccountKind != store.AccountService && c.Kind != store.UserChangeResetPassword {
			if sole, err = s.soleAdmin(ctx, tx, p); err != nil {
				return err
			}
		}
		d := changeDetails(c)
		if !sole {
			if err := tx.UserChangeInsert(ctx, c); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserChangePropose, p.Actor(), c.ID, audit.Success, d))
		}
		c.Status, c.DecidedByID, c.DecidedByName, c.DecidedAt = store.UserChangeApproved, p.UserID, p.Username, now
		c.DecisionComment = "in force at once: no other admin could approve it"
		d["sole_admin"], d["comment"] = true, c.DecisionComment
		if err := tx.UserChangeInsert(ctx, c); err != nil {
			return err
		}
		return s.approve(ctx, tx, p, c, d, pw, hash, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// soleAdmin reports whether p may make user changes alone: p is setting
// up a fresh install. That ends for good as soon as a second account has
// been permitted manageUsers, which the store shows even after the
// account was disabled or taken out of its group — both immediate, and
// otherwise a way back to acting alone:
//   - no change was ever proposed by another account, nor approved by
//     an admin other than its author;
//   - every other account, enabled or not, is one p created alone while
//     setting up (an install that predates dual control, or where single
//     sign-on brought users in, is not being set up);
//   - none of p's own changes gave an account a group permitted
//     manageUsers, and no other account is permitted it now.
func (s *Service) soleAdmin(ctx context.Context, tx store.Tx, p *Principal) (bool, error) {
	all, err := tx.UserChangeList(ctx, "")
	if err != nil {
		return false, err
	}
	mine := map[string]bool{} // accounts p created alone
	for _, c := range all {
		if c.AuthorID != p.UserID {
			return false, nil
		}
		if c.Status != store.UserChangeApproved {
			continue
		}
		if c.DecidedByID != c.AuthorID {
			return false, nil
		}
		granted := &Principal{UserID: c.UserID, Username: c.Username, Groups: c.Groups}
		if c.Kind == store.UserChangeAddMember {
			granted.Groups = []string{c.Group}
		}
		if len(granted.Groups) > 0 && s.authz.AllowedSystem(ctx, granted, manageUsers) {
			return false, nil
		}
		if c.Kind == store.UserChangeCreate {
			mine[c.UserID] = true
		}
	}
	users, err := tx.UserList(ctx)
	if err != nil {
		return false, err
	}
	for _, u := range users {
		if u.ID == p.UserID {
			continue
		}
		if !mine[u.ID] {
			return false, nil
		}
		gs, err := tx.GroupListForUser(ctx, u.ID)
		if err != nil {
			return false, err
		}
		o := &Principal{UserID: u.ID, Username: u.Username}
		for _, g := range gs {
			o.Groups = append(o.Groups, g.Name)
		}
		// The policy was read just before, by checkManageUsers: this
		// decides from the cached set, with no read beside the
		// transaction.
		if s.authz.AllowedSystem(ctx, o, manageUsers) {
			return false, nil
		}
	}
	return true, nil
}

// applicable refuses a change that cannot take effect in the state tx
// reads: a user that exists already, a member already in the group, an
// enabled user.
func applicable(ctx context.Context, tx store.Tx, c *store.UserChange) error {
	u, err := tx.UserGetByUsername(ctx, c.Username)
	if err != nil && airlock.ErrorKind(err) != airlock.NotFound {
		return err
	}
	if c.Kind == store.UserChangeCreate {
		if u != nil {
			return &airlock.Error{Kind: airlock.Conflict, Field: "username", Message: fmt.Sprintf("user %q already exists", c.Username)}
		}
		if c.AccountKind == store.AccountService {
			if _, err := tx.GroupGetByName(ctx, c.OwnerTeam); airlock.ErrorKind(err) == airlock.NotFound {
				return airlock.FieldError("owner_team", "no group %q: a service account is owned by an existing group", c.OwnerTeam)
			} else if err != nil {
				return err
			}
		}
		return nil
	}
	if u == nil {
		return &airlock.Error{Kind: airlock.NotFound, Field: "username", Message: fmt.Sprintf("no user %q", c.Username)}
	}
	switch c.Kind {
	case store.UserChangeAddMember:
		gs, err := tx.GroupListForUser(ctx, u.ID)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.Name == c.Group {
				return airlock.Errorf(airlock.Conflict, "%s is already a member of %s", c.Username, c.Group)
			}
		}
	case store.UserChangeEnable:
		if !u.Disabled {
			return airlock.Errorf(airlock.Conflict, "%s is not disabled", c.Username)
		}
	case store.UserChangeResetPassword:
		switch {
		case u.Kind == store.AccountService:
			return &airlock.Error{Kind: airlock.Invalid, Field: "username",
				Message: fmt.Sprintf("%s is a service account: it has no password; revoke its tokens and make new ones", c.Username)}
		case u.Subject != "":
			return &airlock.Error{Kind: airlock.Invalid, Field: "username",
				Message: fmt.Sprintf("%s signs in with single sign-on: their password is the identity provider's", c.Username)}
		}
	}
	return nil
}

// Describe says what a change does, in a few words.
func Describe(c *store.UserChange) string {
	switch c.Kind {
	case store.UserChangeCreate:
		what := "user " + c.Username
		if c.AccountKind == store.AccountService {
			what = fmt.Sprintf("service account %s owned by %s", c.Username, c.OwnerTeam)
		}
		if len(c.Groups) == 0 {
			return "create " + what
		}
		return fmt.Sprintf("create %s in %s", what, strings.Join(c.Groups, ", "))
	case store.UserChangeAddMember:
		return fmt.Sprintf("add %s to %s", c.Username, c.Group)
	case store.UserChangeEnable:
		return "enable user " + c.Username
	case store.UserChangeResetPassword:
		return "reset the password of " + c.Username
	}
	return c.Kind + " " + c.Username
}

func changeDetails(c *store.UserChange) map[string]any {
	d := map[string]any{"kind": c.Kind, "username": c.Username, "author": c.AuthorName, "author_id": c.AuthorID}
	if c.Group != "" {
		d["group"] = c.Group
	}
	if c.Kind == store.UserChangeCreate {
		d["groups"] = c.Groups
		if c.AccountKind == store.AccountService {
			d["account_kind"], d["owner_team"] = c.AccountKind, c.OwnerTeam
		}
	}
	return d
}

// UserChangeResult is what a decision did. OneTimePassword is set when an
// approval created a user or reset a password: it goes to the approver,
// never the proposer, and must be changed at first sign-in.
type UserChangeResult struct {
	Change          *store.UserChange
	User            *store.User
	OneTimePassword string
}

// DecideUserChange approves or rejects a pending change. Dual control,
// beneath any policy: the author never approves their own change, nor
// does an account linked to the author; the approver must be permitted
// manageUsers by the policy in force. A refused approval is audited.
func (s *Service) DecideUserChange(ctx context.Context, p *Principal, id, decision, comment string) (*UserChangeResult, error) {
	if decision != "approve" && decision != "reject" {
		return nil, airlock.FieldError("decision", "expected approve or reject, got %q", decision)
	}
	if decision == "reject" && strings.TrimSpace(comment) == "" {
		return nil, airlock.FieldError("comment", "a rejection needs a comment")
	}
	if len(comment) > 4000 {
		return nil, airlock.FieldError("comment", "at most 4000 characters")
	}
	if err := s.checkManageUsers(ctx, p); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var pw, hash string
	if decision == "approve" {
		pw = RandomPassword()
		hash = HashPassword(pw)
	}
	var res *UserChangeResult
	var denied *airlock.Error
	err := s.update(ctx, func(tx store.Tx) error {
		res, denied = &UserChangeResult{}, nil // Update may run this again
		c, err := tx.UserChangeGet(ctx, id)
		if err != nil {
			return err
		}
		res.Change = c
		if c.Status != store.UserChangePending {
			return airlock.Errorf(airlock.Conflict, "change %s is %s; only pending changes can be decided", c.ID, c.Status)
		}
		if denied, err = PeopleOnly(ctx, tx, p, "approve or reject user changes"); err != nil {
			return err
		} else if denied != nil {
			return denied
		}
		if decision == "approve" {
			if c.AuthorID == p.UserID {
				denied = airlock.Errorf(airlock.Forbidden, "nobody approves their own user change: a second admin must")
				return denied
			}
			link, err := Linked(ctx, tx, p.UserID, c.AuthorID)
			if err != nil {
				return err
			}
			if link != "" {
				denied = airlock.Errorf(airlock.Forbidden, "your account counts as its author's (%s): a second admin must approve", link)
				return denied
			}
			if c.Username == p.Username {
				denied = airlock.Errorf(airlock.Forbidden, "nobody approves a change to their own account: another admin must")
				return denied
			}
			if c.Kind == store.UserChangeResetPassword {
				// The approver receives the account's password: one who
				// already counts as that account would hold a second
				// credential for one person — an admin's, say.
				if denied, err = resetByLinked(ctx, tx, p, c.Username); err != nil || denied != nil {
					if denied != nil {
						return denied
					}
					return err
				}
			}
		}
		c.DecidedByID, c.DecidedByName, c.DecisionComment, c.DecidedAt = p.UserID, p.Username, comment, now
		d := changeDetails(c)
		d["comment"] = comment
		if decision == "reject" {
			c.Status = store.UserChangeRejected
			if err := tx.UserChangeDecide(ctx, c); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserChangeReject, p.Actor(), c.ID, audit.Success, d))
		}
		if err := applicable(ctx, tx, c); err != nil {
			return err
		}
		return s.approve(ctx, tx, p, c, d, pw, hash, res)
	})
	if denied != nil {
		_ = s.update(ctx, func(tx store.Tx) error {
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserChangeDenied, p.Actor(), id, audit.Denied,
				map[string]any{"decision": decision, "reason": denied.Message}))
		})
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// approve records p's approval of c (details d), makes the change, and
// fills res; a new user gets the password pw (hashed: hash).
func (s *Service) approve(ctx context.Context, tx store.Tx, p *Principal, c *store.UserChange, d map[string]any, pw, hash string,
	res *UserChangeResult) error {
	if err := tx.AuditAppend(ctx, audit.New(ctx, s.now().UTC(), audit.UserChangeApprove, p.Actor(), c.ID, audit.Success, d)); err != nil {
		return err
	}
	u, err := s.apply(ctx, tx, p, c, hash)
	if err != nil {
		return err
	}
	c.Status, c.UserID, res.User = store.UserChangeApproved, u.ID, u
	if (c.Kind == store.UserChangeCreate && c.AccountKind != store.AccountService) || c.Kind == store.UserChangeResetPassword {
		res.OneTimePassword = pw
	}
	return tx.UserChangeDecide(ctx, c)
}

// resetByLinked refuses the approval of a reset of username's password
// by p when p's account counts as that account (one created or granted a
// group the other): a Forbidden error saying how, or nil.
func resetByLinked(ctx context.Context, tx store.Tx, p *Principal, username string) (*airlock.Error, error) {
	u, err := tx.UserGetByUsername(ctx, username)
	if err != nil {
		return nil, err
	}
	link, err := Linked(ctx, tx, p.UserID, u.ID)
	if err != nil || link == "" {
		return nil, err
	}
	return airlock.Errorf(airlock.Forbidden, "your account counts as %s's (%s): an admin who is not linked to it must approve the reset", username, link), nil
}

// apply makes an approved change, audited as the approver's act with the
// proposer named, and links the account it creates or grants a group to
// the proposer.
func (s *Service) apply(ctx context.Context, tx store.Tx, p *Principal, c *store.UserChange, hash string) (*store.User, error) {
	now := s.now().UTC()
	extra := map[string]any{"change": c.ID, "proposed_by": c.AuthorName, "proposed_by_id": c.AuthorID}
	link := func(u *store.User, reason string, e *store.AuditEvent) error {
		if c.DecidedByID == c.AuthorID {
			return nil // setting up alone links nobody
		}
		return linkTo(ctx, tx, audit.Actor{ID: c.AuthorID, Name: c.AuthorName}, u, reason, e, now)
	}
	addMembers := func(u *store.User, groups []string) error {
		for _, g := range groups {
			e, err := s.addMemberEvent(ctx, tx, p.Actor(), g, u, store.MemberManual, extra)
			if err != nil {
				return err
			}
			if err := link(u, fmt.Sprintf("granted %s by %s", g, c.AuthorName), e); err != nil {
				return err
			}
		}
		return nil
	}
	switch c.Kind {
	case store.UserChangeCreate:
		u := &store.User{ID: airlock.NewID(airlock.PrefixUser, now), Username: c.Username, DisplayName: c.DisplayName,
			Email: c.Email, PasswordHash: hash, MustChangePassword: true, Kind: store.AccountPerson, CreatedAt: now, UpdatedAt: now}
		service := c.AccountKind == store.AccountService
		if service {
			// No password: a service account never signs in. Its
			// credentials are tokens made for it later, each linking
			// whoever made it.
			u.PasswordHash, u.MustChangePassword, u.Kind, u.OwnerTeam = "", false, store.AccountService, c.OwnerTeam
		}
		if err := tx.UserInsert(ctx, u); err != nil {
			return nil, err
		}
		d := map[string]any{"username": u.Username, "groups": c.Groups, "must_change_password": u.MustChangePassword}
		if service {
			d["account_kind"], d["owner_team"] = u.Kind, u.OwnerTeam
		}
		maps.Copy(d, extra)
		e := audit.New(ctx, now, audit.UserCreate, p.Actor(), u.ID, audit.Success, d)
		if err := tx.AuditAppend(ctx, e); err != nil {
			return nil, err
		}
		if err := link(u, "created by "+c.AuthorName, e); err != nil {
			return nil, err
		}
		// The approver receives the one-time password: whoever holds it
		// can sign in as the account, so it counts as the approver's too.
		if c.DecidedByID != c.AuthorID && !service {
			if err := linkTo(ctx, tx, p.Actor(), u, "given its one-time password as approver "+p.Username, e, now); err != nil {
				return nil, err
			}
		}
		return u, addMembers(u, c.Groups)
	case store.UserChangeAddMember:
		u, err := tx.UserGetByUsername(ctx, c.Username)
		if err != nil {
			return nil, err
		}
		return u, addMembers(u, []string{c.Group})
	case store.UserChangeEnable:
		u, err := tx.UserGetByUsername(ctx, c.Username)
		if err != nil {
			return nil, err
		}
		u.Disabled, u.UpdatedAt = false, now
		if err := tx.UserUpdate(ctx, u); err != nil {
			return nil, err
		}
		d := map[string]any{"username": u.Username, "disabled": false}
		maps.Copy(d, extra)
		return u, tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserUpdate, p.Actor(), u.ID, audit.Success, d))
	case store.UserChangeResetPassword:
		return s.resetPassword(ctx, tx, p, c, hash, extra)
	}
	return nil, fmt.Errorf("user change %s: unknown kind %q", c.ID, c.Kind)
}

// resetPassword gives c's user the one-time password hashed as hash, to
// be changed at next sign-in, and ends their sessions and revokes their
// API tokens: whoever held the old password is out. The approver, who
// receives the password, counts as the account from then on, as for a
// user they approved creating.
func (s *Service) resetPassword(ctx context.Context, tx store.Tx, p *Principal, c *store.UserChange, hash string, extra map[string]any) (*store.User, error) {
	now := s.now().UTC()
	u, err := tx.UserGetByUsername(ctx, c.Username)
	if err != nil {
		return nil, err
	}
	u.PasswordHash, u.MustChangePassword, u.UpdatedAt = hash, true, now
	if err := tx.UserUpdate(ctx, u); err != nil {
		return nil, err
	}
	sessions, err := tx.SessionRevokeForUser(ctx, u.ID, "", now)
	if err != nil {
		return nil, err
	}
	tokens, err := revokeLiveTokens(ctx, tx, u.ID, now)
	if err != nil {
		return nil, err
	}
	d := map[string]any{"username": u.Username, "password_reset": true, "must_change_password": true,
		"sessions_ended": sessions, "tokens_revoked": tokens}
	maps.Copy(d, extra)
	e := audit.New(ctx, now, audit.UserUpdate, p.Actor(), u.ID, audit.Success, d)
	if err := tx.AuditAppend(ctx, e); err != nil {
		return nil, err
	}
	return u, linkTo(ctx, tx, p.Actor(), u, "given a reset one-time password as approver "+p.Username, e, now)
}

// WithdrawUserChange withdraws one's own pending change.
func (s *Service) WithdrawUserChange(ctx context.Context, p *Principal, id string) (*store.UserChange, error) {
	if err := s.checkManageUsers(ctx, p); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var c *store.UserChange
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		if c, err = tx.UserChangeGet(ctx, id); err != nil {
			return err
		}
		if c.Status != store.UserChangePending {
			return airlock.Errorf(airlock.Conflict, "change %s is %s; only pending changes can be withdrawn", c.ID, c.Status)
		}
		if c.AuthorID != p.UserID {
			return airlock.Errorf(airlock.Forbidden, "only the author withdraws a change; others reject it")
		}
		c.Status, c.DecidedByID, c.DecidedByName, c.DecidedAt = store.UserChangeWithdrawn, p.UserID, p.Username, now
		if err := tx.UserChangeDecide(ctx, c); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserChangeWithdraw, p.Actor(), c.ID, audit.Success, changeDetails(c)))
	})
	return c, err
}

// ListUserChanges lists changes, newest first; status may be empty.
func (s *Service) ListUserChanges(ctx context.Context, p *Principal, status string) ([]*store.UserChange, error) {
	if err := s.checkManageUsers(ctx, p); err != nil {
		return nil, err
	}
	switch status {
	case "", store.UserChangePending, store.UserChangeApproved, store.UserChangeRejected, store.UserChangeWithdrawn:
	default:
		return nil, airlock.FieldError("status", "expected pending, approved, rejected or withdrawn, got %q", status)
	}
	return s.store.UserChangeList(ctx, status)
}

// GetUserChange returns one change.
func (s *Service) GetUserChange(ctx context.Context, p *Principal, id string) (*store.UserChange, error) {
	if err := s.checkManageUsers(ctx, p); err != nil {
		return nil, err
	}
	return s.store.UserChangeGet(ctx, id)
}

// Linked reports whether accounts a and b count as one person for
// separation of duties — one created the other or granted it a group —
// and if so how ("bobby: created by bob"). Empty when they do not, or
// when either is empty.
func Linked(ctx context.Context, r store.Reader, a, b string) (string, error) {
	if a == "" || b == "" || a == b {
		return "", nil
	}
	ls, err := r.AccountLinks(ctx, a)
	if err != nil {
		return "", err
	}
	for _, l := range ls {
		if (l.UserID == a && l.ByID == b) || (l.UserID == b && l.ByID == a) {
			u, err := r.UserGetByID(ctx, l.UserID)
			name := l.UserID
			if err == nil {
				name = u.Username
			}
			return fmt.Sprintf("%s's account was %s, audit event %s", name, l.Reason, l.EventID), nil
		}
	}
	return "", nil
}

// OnePerson refuses an approval by who whose account counts as one of
// counted (the requester or author, and those who approved before): a
// Forbidden error saying how, or nil.
func OnePerson(ctx context.Context, r store.Reader, who string, counted []string) (*airlock.Error, error) {
	for _, o := range counted {
		link, err := Linked(ctx, r, who, o)
		if err != nil {
			return nil, err
		}
		if link != "" {
			return airlock.Errorf(airlock.Forbidden, "your approval would count for a person already counted (%s): a person counts once", link), nil
		}
	}
	return nil, nil
}
