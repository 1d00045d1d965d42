package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/store"
)

// pendingPolicy is a proposed policy set with its diff against the one in
// force and whether the viewer may decide it.
type pendingPolicy struct {
	Version   *store.PolicyVersion
	Diff      string
	CanDecide bool
}

func (h *Handler) pendingPolicies(r *http.Request) ([]pendingPolicy, *store.PolicyVersion, error) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	if err := h.Authz.CanReadPolicy(ctx, p); err != nil {
		return nil, nil, err
	}
	active, err := h.Authz.GetPolicy(ctx, p, "active")
	if err != nil {
		return nil, nil, err
	}
	proposed, err := h.Authz.ListPolicies(ctx, p, store.PolicyProposed)
	if err != nil {
		return nil, nil, err
	}
	canManage := h.mayManagePolicy(r)
	var out []pendingPolicy
	for _, v := range proposed {
		full, err := h.Authz.GetPolicy(ctx, p, v.ID)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, pendingPolicy{Version: full, Diff: authz.DiffPolicies(active, full), CanDecide: canManage && full.AuthorID != p.UserID})
	}
	return out, active, nil
}

func (h *Handler) mayManagePolicy(r *http.Request) bool {
	return h.allowedQuietly(r, policy.ActionManagePolicy)
}

// policiesPage shows the policy in force, the proposals waiting for a
// second admin, and a form to propose a change.
func (h *Handler) policiesPage(w http.ResponseWriter, r *http.Request) {
	h.renderPolicies(w, r, http.StatusOK, "", "")
}

func (h *Handler) renderPolicies(w http.ResponseWriter, r *http.Request, status int, errMsg, draft string) {
	h.renderPoliciesWith(w, r, status, errMsg, draft, nil)
}

// renderPoliciesWith shows the policy page; extra adds a what-if's
// results (Changes, Answer).
func (h *Handler) renderPoliciesWith(w http.ResponseWriter, r *http.Request, status int, errMsg, draft string, extra map[string]any) {
	pending, active, err := h.pendingPolicies(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if draft == "" {
		draft = active.Text
	}
	canManage := h.mayManagePolicy(r)
	h.render(w, r, status, "policies", page{Title: "Policy", Error: errMsg,
		Data: map[string]any{"Active": active, "Pending": pending, "CanManage": canManage, "Draft": draft, "Description": r.PostFormValue("description"),
			"Environments": h.Environments, "Actions": policy.Actions, "Form": r.PostForm, "Checked": extra["Changes"] != nil, "Extra": extra}})
}

// checkPolicy is the what-if of a draft before it is proposed: the
// access review under the draft against the one in force, showing every
// user × procedure × environment whose access would change. Nothing is
// stored; a draft that does not compile shows where.
func (h *Handler) checkPolicy(w http.ResponseWriter, r *http.Request, text string) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	if err := h.Authz.CheckSystem(ctx, p, policy.ActionManagePolicy); err != nil {
		h.fail(w, r, err)
		return
	}
	before, err := h.Authz.AccessReview(ctx, p, authz.Question{})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	after, err := h.Authz.AccessReview(ctx, p, authz.Question{PolicyText: text})
	if err != nil {
		if airlock.ErrorKind(err) != airlock.Invalid {
			h.fail(w, r, err)
			return
		}
		h.renderPoliciesWith(w, r, http.StatusBadRequest, userMessage(err), text, nil)
		return
	}
	h.renderPoliciesWith(w, r, http.StatusOK, "", text, map[string]any{"Changes": authz.AccessChanges(before, after)})
}

func (h *Handler) proposePolicy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	text := strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n")
	if r.PostFormValue("check") != "" {
		h.checkPolicy(w, r, text)
		return
	}
	if _, err := h.Authz.ProposePolicy(ctx, identity.PrincipalFrom(ctx), text, r.PostFormValue("description")); err != nil {
		if airlock.ErrorKind(err) != airlock.Invalid {
			h.fail(w, r, err)
			return
		}
		h.renderPolicies(w, r, http.StatusBadRequest, userMessage(err), text)
		return
	}
	http.Redirect(w, r, "/policies", http.StatusSeeOther)
}

func (h *Handler) decidePolicy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	decision := r.PostFormValue("decision")
	if decision != "approve" && decision != "reject" {
		h.fail(w, r, airlock.FieldError("decision", "expected approve or reject"))
		return
	}
	if _, err := h.Authz.DecidePolicy(ctx, identity.PrincipalFrom(ctx), r.PathValue("id"), decision, r.PostFormValue("digest"), r.PostFormValue("comment")); err != nil {
		h.renderPolicies(w, r, airlockStatus(err), userMessage(err), "")
		return
	}
	http.Redirect(w, r, "/policies", http.StatusSeeOther)
}

// explainPolicy answers one question (who, which action, which
// procedure, where, whose run) with the policy in force: allowed or not,
// by which policies, and for a run what would happen and who could
// approve it. Anyone may ask about themselves; about others, those who
// may read policy (the authorizer checks).
func (h *Handler) explainPolicy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := authz.Question{Username: strings.TrimSpace(r.PostFormValue("username")), Action: r.PostFormValue("action"),
		Procedure: strings.TrimSpace(r.PostFormValue("procedure")), Environment: r.PostFormValue("environment"),
		Requester: strings.TrimSpace(r.PostFormValue("requester"))}
	ans, err := h.Authz.Explain(ctx, identity.PrincipalFrom(ctx), q)
	if err != nil {
		if k := airlock.ErrorKind(err); k != airlock.Invalid && k != airlock.NotFound {
			h.fail(w, r, err)
			return
		}
		h.renderPoliciesWith(w, r, airlockStatus(err), userMessage(err), "", nil)
		return
	}
	h.renderPoliciesWith(w, r, http.StatusOK, "", "", map[string]any{"Answer": ans})
}

// accountPage: one's password and API tokens.
func (h *Handler) accountPage(w http.ResponseWriter, r *http.Request) {
	h.renderAccount(w, r, http.StatusOK, "", "", "")
}

func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, status int, errMsg, flash, newToken string) {
	h.renderAccountWith(w, r, status, errMsg, flash, newToken, nil)
}

// renderAccountWith shows the account page; code is a chat link code
// just issued (shown once).
func (h *Handler) renderAccountWith(w http.ResponseWriter, r *http.Request, status int, errMsg, flash, newToken string, code *identity.ChatLinkCode) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	tokens, err := h.Identity.ListTokens(ctx, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// What "also revoke my API tokens" would revoke.
	live, err := h.Identity.LiveTokens(ctx, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	links, err := h.Identity.ChatLinks(ctx, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	data := map[string]any{"Tokens": tokens, "LiveTokens": live, "NewToken": newToken, "Now": h.now(), "ChatLinks": links, "LinkCode": code}
	if h.Notify != nil {
		choices, err := h.Notify.Subscriptions(ctx, p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["Choices"] = choiceRows(choices)
	}
	h.render(w, r, status, "account", page{Title: "Account", Error: errMsg, Flash: flash, Data: data})
}

// chatLinkCode issues a one-time code that links a chat account (typed
// there as /airlock link CODE), shown once.
func (h *Handler) chatLinkCode(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := h.Identity.IssueChatLinkCode(ctx, identity.PrincipalFrom(ctx))
	if err != nil {
		h.renderAccount(w, r, airlockStatus(err), userMessage(err), "", "")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.renderAccountWith(w, r, http.StatusOK, "", "", "", c)
}

func (h *Handler) unlinkChat(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := h.Identity.UnlinkChat(ctx, identity.PrincipalFrom(ctx),
		identity.ChatAccount{Provider: r.PathValue("provider"), TeamID: r.PathValue("team"), ExternalID: r.PathValue("id")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// choiceRow is one kind of notification with its channels, for the
// account page's table.
type choiceRow struct {
	Kind    string
	Choices []notify.Choice
}

func choiceRows(cs []notify.Choice) []choiceRow {
	var rows []choiceRow
	for _, c := range cs {
		if len(rows) == 0 || rows[len(rows)-1].Kind != c.Kind {
			rows = append(rows, choiceRow{Kind: c.Kind})
		}
		rows[len(rows)-1].Choices = append(rows[len(rows)-1].Choices, c)
	}
	return rows
}

// setNotifications records the account page's notification choices: a
// box ticked is on, every other box the page showed is off.
func (h *Handler) setNotifications(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	shown, err := h.Notify.Subscriptions(ctx, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	on := map[string]bool{}
	for _, v := range r.PostForm["on"] {
		on[v] = true
	}
	for i := range shown {
		shown[i].Enabled = on[shown[i].Kind+":"+shown[i].Channel]
	}
	if err := h.Notify.SetSubscriptions(ctx, p, shown); err != nil {
		h.renderAccount(w, r, airlockStatus(err), userMessage(err), "", "")
		return
	}
	h.renderAccount(w, r, http.StatusOK, "", "Your notification choices are saved.", "")
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.PostFormValue("new") != r.PostFormValue("confirm") {
		h.renderAccount(w, r, http.StatusBadRequest, "new password: the two entries differ", "", "")
		return
	}
	p := identity.PrincipalFrom(ctx)
	done, err := h.Identity.ChangePasswordWith(ctx, p, identity.PasswordChange{Current: r.PostFormValue("current"),
		New: r.PostFormValue("new"), RevokeTokens: r.PostFormValue("revoke_tokens") == "on"})
	if err != nil {
		h.renderAccount(w, r, airlockStatus(err), userMessage(err), "", "")
		return
	}
	p.MustChangePassword = false
	flash := "Password changed. Your other sessions were signed out."
	if done.TokensRevoked > 0 {
		flash += fmt.Sprintf(" %d API token(s) revoked.", done.TokensRevoked)
	}
	h.renderAccount(w, r, http.StatusOK, "", flash, "")
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ttl, err := time.ParseDuration(r.PostFormValue("ttl"))
	if err != nil || ttl <= 0 {
		h.renderAccount(w, r, http.StatusBadRequest, "expires in: expected a duration such as 720h", "", "")
		return
	}
	secret, _, err := h.Identity.CreateToken(ctx, identity.PrincipalFrom(ctx), r.PostFormValue("name"), ttl)
	if err != nil {
		h.renderAccount(w, r, airlockStatus(err), userMessage(err), "", "")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.renderAccount(w, r, http.StatusOK, "", "Token created. Copy it now: it is not shown again.", secret)
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := h.Identity.RevokeToken(ctx, identity.PrincipalFrom(ctx), r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// allowedQuietly reports whether p may do a system action, without
// auditing a denial (it only decides what a page offers).
func (h *Handler) allowedQuietly(r *http.Request, action string) bool {
	return h.Authz.Allowed(r.Context(), identity.PrincipalFrom(r.Context()), action, policy.Resource{}, policy.Context{})
}

// adminPage gathers what the viewer may administer or inspect: the access
// review, nodes, secrets (names only) and users. A section the viewer may
// not see is left out; with none, the page is a 404 like any other.
func (h *Handler) adminPage(w http.ResponseWriter, r *http.Request) {
	h.renderAdmin(w, r, http.StatusOK, "", "", nil)
}

// renderAdmin shows the admin page; extra adds to its data (a one-time
// password just issued, a form's values to show again).
func (h *Handler) renderAdmin(w http.ResponseWriter, r *http.Request, status int, errMsg, flash string, extra map[string]any) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	data := map[string]any{"Form": r.PostForm}
	if h.allowedQuietly(r, policy.ActionManagePolicy) || h.allowedQuietly(r, policy.ActionReadAudit) {
		rep, err := h.Authz.AccessReview(ctx, p, authz.Question{})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["Access"] = rep
	}
	if h.allowedQuietly(r, policy.ActionManageNodes) {
		nodes, err := h.Nodes.List(ctx, p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["Nodes"] = nodes
	}
	if h.allowedQuietly(r, policy.ActionManageSecrets) {
		secrets, err := h.Secrets.List(ctx, p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["Secrets"], data["SecretsAllowed"] = secrets, true
	}
	if h.allowedQuietly(r, policy.ActionManageUsers) {
		users, groups, err := h.Identity.ListUsers(ctx, p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		changes, err := h.Identity.ListUserChanges(ctx, p, store.UserChangePending)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		var views []userChangeView
		for _, c := range changes {
			views = append(views, userChangeView{c, identity.Describe(c)})
		}
		data["Users"], data["Groups"], data["UserChanges"] = users, groups, views
	}
	if h.Notify != nil && h.allowedQuietly(r, policy.ActionManagePolicy) {
		dead, err := h.Notify.Deliveries(ctx, p, store.DeliveryDead, 50)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["NotifyChannels"], data["DeadLetters"], data["NotifyAllowed"] = h.Notify.Channels(), dead, true
	}
	if len(data) == 1 {
		h.fail(w, r, airlock.Errorf(airlock.NotFound, "no such page"))
		return
	}
	data["Environments"] = h.Environments
	for k, v := range extra {
		data[k] = v
	}
	h.render(w, r, status, "admin", page{Title: "Administration", Error: errMsg, Flash: flash, Data: data})
}

// notifyTest sends a test message through a channel.
func (h *Handler) notifyTest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	channel := r.PostFormValue("channel")
	_, err := h.Notify.Test(ctx, identity.PrincipalFrom(ctx), channel)
	h.adminResult(w, r, err, "A test message is on its way through "+channel+".", nil)
}

// retryDelivery sends a dead letter again.
func (h *Handler) retryDelivery(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d, err := h.Notify.Retry(ctx, identity.PrincipalFrom(ctx), r.PathValue("id"))
	msg := ""
	if err == nil {
		msg = "Delivery " + d.ID + " through " + d.Channel + " is queued again."
	}
	h.adminResult(w, r, err, msg, nil)
}

// userChangeView is a pending user change as the admin page shows it.
type userChangeView struct {
	*store.UserChange
	Summary string
}

// putSecret creates or replaces a secret, or with no value only sets
// which teams and procedures may use it. The value is never sent back.
func (h *Handler) putSecret(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	name, value := strings.TrimSpace(r.PostFormValue("name")), strings.ReplaceAll(r.PostFormValue("value"), "\r\n", "\n")
	var scope *secret.Scope
	if teams, procs := splitList(r.PostFormValue("teams")), splitList(r.PostFormValue("procedures")); len(teams)+len(procs) > 0 {
		scope = &secret.Scope{Teams: teams, Procedures: procs}
	}
	var err error
	switch {
	case value != "":
		_, err = h.Secrets.PutScoped(ctx, p, name, []byte(value), scope)
	case scope != nil:
		_, err = h.Secrets.SetScope(ctx, p, name, *scope)
	default:
		err = airlock.FieldError("value", "enter a value, or teams or procedures to change only who may use the secret")
	}
	h.adminResult(w, r, err, "Secret "+name+" stored.", nil)
}

// adminResult answers an admin form: a refused value shows the page
// again with the message (leading with its field) and the form's values;
// anything else that failed is an error page.
func (h *Handler) adminResult(w http.ResponseWriter, r *http.Request, err error, flash string, extra map[string]any) {
	if err != nil {
		switch airlock.ErrorKind(err) {
		case airlock.Invalid, airlock.Conflict, airlock.NotFound:
			h.renderAdmin(w, r, airlockStatus(err), userMessage(err), "", extra)
		default:
			h.fail(w, r, err)
		}
		return
	}
	if extra == nil {
		extra = map[string]any{}
	}
	extra["Form"] = url.Values{} // done: the forms start empty again
	h.renderAdmin(w, r, http.StatusOK, "", flash, extra)
}

// putNode creates or replaces a node managed here (not one from the
// inventory file, which stays its source of truth).
func (h *Handler) putNode(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	port := 0
	if v := strings.TrimSpace(r.PostFormValue("port")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			h.adminResult(w, r, airlock.FieldError("port", "expected a number, got %q", v), "", nil)
			return
		}
		port = n
	}
	attrs := map[string]string{}
	for _, kv := range splitList(r.PostFormValue("attributes")) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			h.adminResult(w, r, airlock.FieldError("attributes", "expected key=value pairs separated by commas, got %q", kv), "", nil)
			return
		}
		attrs[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	n := inventory.Node{Name: strings.TrimSpace(r.PostFormValue("name")), Environment: r.PostFormValue("environment"),
		Transport: r.PostFormValue("transport"), Address: strings.TrimSpace(r.PostFormValue("address")), Port: port,
		User: strings.TrimSpace(r.PostFormValue("user")), Tags: splitList(r.PostFormValue("tags")), Attributes: attrs,
		HostKey: strings.TrimSpace(r.PostFormValue("host_key")), Credential: strings.TrimSpace(r.PostFormValue("credential"))}
	_, err := h.Nodes.Put(ctx, identity.PrincipalFrom(ctx), n)
	h.adminResult(w, r, err, "Node "+n.Name+" saved.", nil)
}

func (h *Handler) deleteNode(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	err := h.Nodes.Delete(ctx, identity.PrincipalFrom(ctx), name)
	h.adminResult(w, r, err, "Node "+name+" removed.", nil)
}

// createUser proposes a local user; another admin approves it.
func (h *Handler) createUser(w http.ResponseWriter, r *http.Request) {
	h.proposeUserChange(w, r, identity.UserChangeParams{Kind: store.UserChangeCreate,
		Username: strings.TrimSpace(r.PostFormValue("username")), DisplayName: strings.TrimSpace(r.PostFormValue("display_name")),
		Email: strings.TrimSpace(r.PostFormValue("email")), Groups: splitList(r.PostFormValue("groups")),
		AccountKind: r.PostFormValue("kind"), OwnerTeam: strings.TrimSpace(r.PostFormValue("owner_team"))})
}

// addMember proposes adding a user to a group; removeMember removes at
// once.
func (h *Handler) addMember(w http.ResponseWriter, r *http.Request) {
	h.proposeUserChange(w, r, identity.UserChangeParams{Kind: store.UserChangeAddMember,
		Username: r.PathValue("username"), Group: strings.TrimSpace(r.PostFormValue("group"))})
}

func (h *Handler) proposeUserChange(w http.ResponseWriter, r *http.Request, in identity.UserChangeParams) {
	ctx := r.Context()
	res, err := h.Identity.ProposeUserChange(ctx, identity.PrincipalFrom(ctx), in)
	if err != nil {
		h.adminResult(w, r, err, "", nil)
		return
	}
	h.changeResult(w, r, res, "Proposed: "+identity.Describe(res.Change)+". It takes effect when another admin approves it.")
}

// decideUserChange approves or rejects a proposed change. Approving the
// creation of a user shows its one-time password, once, to the approver.
func (h *Handler) decideUserChange(decision string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		res, err := h.Identity.DecideUserChange(ctx, identity.PrincipalFrom(ctx), r.PathValue("id"), decision, r.PostFormValue("comment"))
		if err != nil {
			if airlock.ErrorKind(err) == airlock.Forbidden {
				// Self-approval and linked accounts: say why, on the page.
				h.renderAdmin(w, r, http.StatusForbidden, userMessage(err), "", nil)
				return
			}
			h.adminResult(w, r, err, "", nil)
			return
		}
		h.changeResult(w, r, res, "Rejected: "+identity.Describe(res.Change)+".")
	}
}

// changeResult shows the admin page after a user change; a change that
// took effect says so, with a new user's one-time password shown once.
func (h *Handler) changeResult(w http.ResponseWriter, r *http.Request, res *identity.UserChangeResult, pending string) {
	if res.Change.Status != store.UserChangeApproved {
		h.adminResult(w, r, nil, pending, nil)
		return
	}
	var extra map[string]any
	msg := "Done: " + identity.Describe(res.Change) + "."
	if res.Change.DecidedByID == res.Change.AuthorID {
		msg += " It took effect at once: no other admin could approve it."
	}
	if res.OneTimePassword != "" {
		w.Header().Set("Cache-Control", "no-store")
		msg += " Give " + res.Change.Username + " this one-time password; it is not shown again and must be changed at first sign-in."
		extra = map[string]any{"NewPassword": res.OneTimePassword}
	}
	h.adminResult(w, r, nil, msg, extra)
}

func (h *Handler) withdrawUserChange(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := h.Identity.WithdrawUserChange(ctx, identity.PrincipalFrom(ctx), r.PathValue("id"))
	msg := ""
	if err == nil {
		msg = "Withdrawn: " + identity.Describe(c) + "."
	}
	h.adminResult(w, r, err, msg, nil)
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user, group := r.PathValue("username"), r.PathValue("group")
	err := h.Identity.RemoveMember(ctx, identity.PrincipalFrom(ctx), group, user)
	h.adminResult(w, r, err, user+" removed from "+group+".", nil)
}

// disableUser disables a user at once (ending sessions, revoking
// tokens); enableUser proposes enabling them again.
func (h *Handler) disableUser(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := r.PathValue("username")
	err := h.Identity.Disable(ctx, identity.PrincipalFrom(ctx), user)
	h.adminResult(w, r, err, user+" disabled: their sessions ended and their API tokens are revoked.", nil)
}

func (h *Handler) enableUser(w http.ResponseWriter, r *http.Request) {
	h.proposeUserChange(w, r, identity.UserChangeParams{Kind: store.UserChangeEnable, Username: r.PathValue("username")})
}

// splitList reads a comma-separated form value.
func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
