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
		h.renderDraftError(w, r, err, text)
		return
	}
	h.renderPoliciesWith(w, r, http.StatusOK, "", text, map[string]any{"Changes": authz.AccessChanges(before, after)})
}

// renderDraftError shows a refused draft in the editor with its problems
// beside it, each at its line and in words; a refusal without a position
// is shown there as it is.
func (h *Handler) renderDraftError(w http.ResponseWriter, r *http.Request, err error, text string) {
	extra := map[string]any{"DraftError": userMessage(err)}
	if airlock.ErrorField(err) == "text" {
		if ps := policyProblems(airlock.ErrorMessage(err), text); len(ps) > 0 {
			extra["Problems"] = ps
		}
	}
	h.renderPoliciesWith(w, r, http.StatusBadRequest, "", text, extra)
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
		h.renderDraftError(w, r, err, text)
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
		// Beside the question, not at the top of the page.
		h.renderPoliciesWith(w, r, airlockStatus(err), "", "", map[string]any{"ExplainError": userMessage(err)})
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

// The admin pages: /admin is an overview linking the sections the
// viewer may use, with counts; each section has its own page. A section
// the viewer may not use is a 404 like any other page, and so is /admin
// with none.
const (
	sectionOverview      = ""
	sectionAccess        = "access"
	sectionUsers         = "users"
	sectionChanges       = "changes"
	sectionNodes         = "nodes"
	sectionSecrets       = "secrets"
	sectionNotifications = "notifications"
)

// adminSection is a link of the overview and the sections' navigation.
type adminSection struct {
	Name, Title, Summary string
	Count                int
	Counted              bool
}

func (s adminSection) Path() string {
	if s.Name == sectionOverview {
		return "/admin"
	}
	return "/admin/" + s.Name
}

// adminSections are the sections the viewer may use, in order.
func (h *Handler) adminSections(r *http.Request) []adminSection {
	var out []adminSection
	if h.allowedQuietly(r, policy.ActionManagePolicy) || h.allowedQuietly(r, policy.ActionReadAudit) {
		out = append(out, adminSection{Name: sectionAccess, Title: "Access review", Summary: "who can run or request what where, and by which policies"})
	}
	if h.allowedQuietly(r, policy.ActionManageUsers) {
		out = append(out, adminSection{Name: sectionUsers, Title: "Users", Summary: "users and their groups; propose a user, a membership, a password reset"},
			adminSection{Name: sectionChanges, Title: "Changes awaiting a second admin", Summary: "approve or reject another admin's user changes; withdraw yours"})
	}
	if h.allowedQuietly(r, policy.ActionManageNodes) {
		out = append(out, adminSection{Name: sectionNodes, Title: "Nodes", Summary: "the machines runs reach; add, replace and remove those managed here"})
	}
	if h.allowedQuietly(r, policy.ActionManageSecrets) {
		out = append(out, adminSection{Name: sectionSecrets, Title: "Secrets", Summary: "names and who may use them; values are write-only"})
	}
	if h.Notify != nil && h.allowedQuietly(r, policy.ActionManagePolicy) {
		out = append(out, adminSection{Name: sectionNotifications, Title: "Notifications", Summary: "channels, test messages and dead letters"})
	}
	return out
}

// adminPage is the overview; adminSectionPage one section.
func (h *Handler) adminPage(w http.ResponseWriter, r *http.Request) {
	h.renderAdmin(w, r, sectionOverview, http.StatusOK, "", "", nil)
}

func (h *Handler) adminSectionPage(section string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.renderAdmin(w, r, section, http.StatusOK, "", "", nil)
	}
}

// renderAdmin shows an admin page; extra adds to its data (a one-time
// password just issued, a form's values to show again).
func (h *Handler) renderAdmin(w http.ResponseWriter, r *http.Request, section string, status int, errMsg, flash string, extra map[string]any) {
	sections := h.adminSections(r)
	current := adminSection{Name: sectionOverview, Title: "Administration"}
	found := section == sectionOverview && len(sections) > 0
	for _, s := range sections {
		if s.Name == section {
			current, found = s, true
		}
	}
	if !found {
		h.fail(w, r, airlock.Errorf(airlock.NotFound, "no such page"))
		return
	}
	data := map[string]any{"Form": r.PostForm, "Section": section, "Sections": sections, "Current": current}
	for i := range sections {
		if err := h.adminSectionData(r, &sections[i], section, data); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	data["Environments"] = h.Environments
	for k, v := range extra {
		data[k] = v
	}
	title := "Administration"
	if section != sectionOverview {
		title = current.Title + " · Administration"
	}
	h.render(w, r, status, "admin", page{Title: title, Error: errMsg, Flash: flash, Data: data})
}

// adminSectionData counts a section for the overview, and fills data
// with its contents when it is the page shown (the access review, which
// evaluates every user × procedure × environment, only then).
func (h *Handler) adminSectionData(r *http.Request, s *adminSection, shown string, data map[string]any) error {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	if shown != sectionOverview && shown != s.Name {
		return nil
	}
	switch s.Name {
	case sectionAccess:
		if shown != s.Name {
			return nil
		}
		rep, err := h.Authz.AccessReview(ctx, p, authz.Question{})
		if err != nil {
			return err
		}
		data["Access"] = rep
	case sectionUsers:
		users, groups, err := h.Identity.ListUsers(ctx, p)
		if err != nil {
			return err
		}
		s.Count, s.Counted = len(users), true
		data["Users"], data["Groups"] = users, groups
	case sectionChanges:
		changes, err := h.Identity.ListUserChanges(ctx, p, store.UserChangePending)
		if err != nil {
			return err
		}
		var views []userChangeView
		for _, c := range changes {
			views = append(views, userChangeView{c, identity.Describe(c)})
		}
		s.Count, s.Counted = len(views), true
		data["UserChanges"] = views
	case sectionNodes:
		nodes, err := h.Nodes.List(ctx, p)
		if err != nil {
			return err
		}
		s.Count, s.Counted = len(nodes), true
		data["Nodes"] = nodes
	case sectionSecrets:
		secrets, err := h.Secrets.List(ctx, p)
		if err != nil {
			return err
		}
		s.Count, s.Counted = len(secrets), true
		data["Secrets"] = secrets
	case sectionNotifications:
		dead, err := h.Notify.Deliveries(ctx, p, store.DeliveryDead, 50)
		if err != nil {
			return err
		}
		s.Count, s.Counted = len(dead), true
		data["NotifyChannels"], data["DeadLetters"] = h.Notify.Channels(), dead
	}
	return nil
}

// notifyTest sends a test message through a channel.
func (h *Handler) notifyTest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	channel := r.PostFormValue("channel")
	_, err := h.Notify.Test(ctx, identity.PrincipalFrom(ctx), channel)
	h.adminResult(w, r, sectionNotifications, err, "A test message is on its way through "+channel+".", nil)
}

// retryDelivery sends a dead letter again.
func (h *Handler) retryDelivery(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d, err := h.Notify.Retry(ctx, identity.PrincipalFrom(ctx), r.PathValue("id"))
	msg := ""
	if err == nil {
		msg = "Delivery " + d.ID + " through " + d.Channel + " is queued again."
	}
	h.adminResult(w, r, sectionNotifications, err, msg, nil)
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
	h.adminResult(w, r, sectionSecrets, err, "Secret "+name+" stored.", nil)
}

// adminResult answers an admin form: a refused value shows the page
// again with the message (leading with its field) and the form's values;
// anything else that failed is an error page.
func (h *Handler) adminResult(w http.ResponseWriter, r *http.Request, section string, err error, flash string, extra map[string]any) {
	if err != nil {
		switch airlock.ErrorKind(err) {
		case airlock.Invalid, airlock.Conflict, airlock.NotFound:
			h.renderAdmin(w, r, section, airlockStatus(err), userMessage(err), "", extra)
		default:
			h.fail(w, r, err)
		}
		return
	}
	if extra == nil {
		extra = map[string]any{}
	}
	extra["Form"] = url.Values{} // done: the forms start empty again
	h.renderAdmin(w, r, section, http.StatusOK, "", flash, extra)
}

// putNode creates or replaces a node managed here (not one from the
// inventory file, which stays its source of truth).
func (h *Handler) putNode(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	port := 0
	if v := strings.TrimSpace(r.PostFormValue("port")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			h.adminResult(w, r, sectionNodes, airlock.FieldError("port", "expected a number, got %q", v), "", nil)
			return
		}
		port = n
	}
	attrs := map[string]string{}
	for _, kv := range splitList(r.PostFormValue("attributes")) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			h.adminResult(w, r, sectionNodes, airlock.FieldError("attributes", "expected key=value pairs separated by commas, got %q", kv), "", nil)
			return
		}
		attrs[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	n := inventory.Node{Name: strings.TrimSpace(r.PostFormValue("name")), Environment: r.PostFormValue("environment"),
		Transport: r.PostFormValue("transport"), Address: strings.TrimSpace(r.PostFormValue("address")), Port: port,
		User: strings.TrimSpace(r.PostFormValue("user")), Tags: splitList(r.PostFormValue("tags")), Attributes: attrs,
		HostKey: strings.TrimSpace(r.PostFormValue("host_key")), Credential: strings.TrimSpace(r.PostFormValue("credential"))}
	_, err := h.Nodes.Put(ctx, identity.PrincipalFrom(ctx), n)
	h.adminResult(w, r, sectionNodes, err, "Node "+n.Name+" saved.", nil)
}

func (h *Handler) deleteNode(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	if h.allowedQuietly(r, policy.ActionManageNodes) && !h.confirmed(w, r, confirmation{Title: "Remove node " + name + "?",
		Effect: "Runs will no longer reach " + name + ". Its definition is gone; to use it again, add it again.",
		Button: "Remove " + name, Back: "/admin/nodes"}) {
		return
	}
	err := h.Nodes.Delete(ctx, identity.PrincipalFrom(ctx), name)
	h.adminResult(w, r, sectionNodes, err, "Node "+name+" removed.", nil)
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
		h.adminResult(w, r, sectionUsers, err, "", nil)
		return
	}
	h.changeResult(w, r, sectionUsers, res, "Proposed: "+identity.Describe(res.Change)+". It takes effect when another admin approves it.")
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
				h.renderAdmin(w, r, sectionChanges, http.StatusForbidden, userMessage(err), "", nil)
				return
			}
			h.adminResult(w, r, sectionChanges, err, "", nil)
			return
		}
		h.changeResult(w, r, sectionChanges, res, "Rejected: "+identity.Describe(res.Change)+".")
	}
}

// changeResult shows the admin page after a user change; a change that
// took effect says so, with a new user's one-time password shown once.
func (h *Handler) changeResult(w http.ResponseWriter, r *http.Request, section string, res *identity.UserChangeResult, pending string) {
	if res.Change.Status != store.UserChangeApproved {
		h.adminResult(w, r, section, nil, pending, nil)
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
		if res.Change.Kind == store.UserChangeResetPassword {
			msg += " Their sessions ended and their API tokens are revoked."
		}
		extra = map[string]any{"NewPassword": res.OneTimePassword}
	}
	h.adminResult(w, r, section, nil, msg, extra)
}

func (h *Handler) withdrawUserChange(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := h.Identity.WithdrawUserChange(ctx, identity.PrincipalFrom(ctx), r.PathValue("id"))
	msg := ""
	if err == nil {
		msg = "Withdrawn: " + identity.Describe(c) + "."
	}
	h.adminResult(w, r, sectionChanges, err, msg, nil)
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user, group := r.PathValue("username"), r.PathValue("group")
	if h.allowedQuietly(r, policy.ActionManageUsers) && !h.confirmed(w, r, confirmation{Title: "Remove " + user + " from " + group + "?",
		Effect: user + " loses at once what " + group + " is permitted. Adding them back is a change another admin must approve.",
		Button: "Remove " + user + " from " + group, Back: "/admin/users#user-" + user}) {
		return
	}
	err := h.Identity.RemoveMember(ctx, identity.PrincipalFrom(ctx), group, user)
	h.adminResult(w, r, sectionUsers, err, user+" removed from "+group+".", nil)
}

// disableUser disables a user at once (ending sessions, revoking
// tokens); enableUser proposes enabling them again.
func (h *Handler) disableUser(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := r.PathValue("username")
	if h.allowedQuietly(r, policy.ActionManageUsers) && !h.confirmed(w, r, confirmation{Title: "Disable " + user + "?",
		Effect: user + " is signed out at once, their API tokens are revoked and their chat accounts unlinked. Enabling them again is a change another admin must approve, and their tokens stay revoked.",
		Button: "Disable " + user, Back: "/admin/users#user-" + user}) {
		return
	}
	err := h.Identity.Disable(ctx, identity.PrincipalFrom(ctx), user)
	h.adminResult(w, r, sectionUsers, err, user+" disabled: their sessions ended and their API tokens are revoked.", nil)
}

func (h *Handler) enableUser(w http.ResponseWriter, r *http.Request) {
	h.proposeUserChange(w, r, identity.UserChangeParams{Kind: store.UserChangeEnable, Username: r.PathValue("username")})
}

// resetPassword proposes a one-time password for a local user; the
// admin who approves it receives it.
func (h *Handler) resetPassword(w http.ResponseWriter, r *http.Request) {
	h.proposeUserChange(w, r, identity.UserChangeParams{Kind: store.UserChangeResetPassword, Username: r.PathValue("username")})
}

// adminRoutes are the admin pages and their forms.
func (h *Handler) adminRoutes() []route {
	return []route{
		{"GET /admin", true, h.adminPage},
		{"GET /admin/access", true, h.adminSectionPage(sectionAccess)},
		{"GET /admin/users", true, h.adminSectionPage(sectionUsers)},
		{"GET /admin/changes", true, h.adminSectionPage(sectionChanges)},
		{"GET /admin/nodes", true, h.adminSectionPage(sectionNodes)},
		{"GET /admin/secrets", true, h.adminSectionPage(sectionSecrets)},
		{"GET /admin/notifications", true, h.adminSectionPage(sectionNotifications)},
		{"POST /admin/secrets", true, h.putSecret},
		{"POST /admin/nodes", true, h.putNode},
		{"POST /admin/nodes/{name}/delete", true, h.deleteNode},
		{"POST /admin/users", true, h.createUser},
		{"POST /admin/users/{username}/groups", true, h.addMember},
		{"POST /admin/notify/test", true, h.notifyTest},
		{"POST /admin/notify/deliveries/{id}/retry", true, h.retryDelivery},
		{"POST /admin/users/{username}/disable", true, h.disableUser},
		{"POST /admin/users/{username}/enable", true, h.enableUser},
		{"POST /admin/users/{username}/reset-password", true, h.resetPassword},
		{"POST /admin/user-changes/{id}/approve", true, h.decideUserChange("approve")},
		{"POST /admin/user-changes/{id}/reject", true, h.decideUserChange("reject")},
		{"POST /admin/user-changes/{id}/withdraw", true, h.withdrawUserChange},
		{"POST /admin/users/{username}/groups/{group}/remove", true, h.removeMember},
	}
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
