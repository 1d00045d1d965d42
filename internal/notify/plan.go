package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// Directory answers who is concerned by what: the people policy lets
// approve a run or review a version, and those who may decide policy and
// user changes. The server implements it with the authorizer.
type Directory interface {
	RunApprovers(ctx context.Context, r *store.Run) ([]string, error)
	Reviewers(ctx context.Context, v *store.ProcedureVersion) ([]string, error)
	// Permitted lists the enabled users policy permits a system action
	// (managePolicy, manageUsers).
	Permitted(ctx context.Context, action string) ([]string, error)
	// StandingApprovers lists the people who could approve a proposed
	// schedule or trigger.
	StandingApprovers(ctx context.Context, st *store.Standing) ([]string, error)
}

// Route is a place beyond people: a team's (configuration) or a
// procedure's (its file) chat channel, mailing list or webhook.
type Route struct {
	Kinds    []string // empty: every kind
	Email    []string
	Slack    string
	Teams    string // a configured Teams webhook's name
	Webhooks []string
}

func (r Route) wants(kind string) bool { return len(r.Kinds) == 0 || slices.Contains(r.Kinds, kind) }

// Planner turns an outbox entry into a message and its deliveries.
type Planner struct {
	Store     store.Reader
	Directory Directory
	// PublicURL prefixes the links in messages.
	PublicURL string
	// Channels are the configured channels by name.
	Channels map[string]Channel
	// Webhooks receive every event of their kinds (by channel name
	// "webhook:NAME").
	Webhooks map[string][]string
	// Owners routes a team's procedures' notifications.
	Owners map[string][]Route
	// SlackIDs returns the Slack users a person linked to their account
	// (nil: nobody is reached in Slack directly).
	SlackIDs func(ctx context.Context, userID string) ([]string, error)
	// ProcedureRoutes returns the routes a procedure's approved
	// definition names (its notify: rules), or none.
	ProcedureRoutes func(ctx context.Context, procedure string) ([]Route, error)
}

// Planned is what an entry notifies: the message (without a target) and
// where it goes.
type Planned struct {
	Message *Message
	Targets []Delivery
}

// Delivery is one place a message goes.
type Delivery struct {
	Channel   string
	Target    string
	Recipient *Recipient
}

// about is what a message is about, read from the store.
type about struct {
	kind      string
	people    []string // usernames addressed
	procedure string   // for team and procedure routes
	owner     string
	msg       *Message
}

// Plan builds what an entry notifies; nil when it notifies nobody (a run
// request that runs at once, say).
func (p *Planner) Plan(ctx context.Context, e *store.OutboxEntry) (*Planned, error) {
	if e.Type == Test {
		return p.test(ctx, e)
	}
	a, err := p.about(ctx, e)
	if err != nil || a == nil {
		return nil, err
	}
	a.msg.Kind, a.msg.Type, a.msg.Subject, a.msg.Time = a.kind, e.Type, e.Subject, e.CreatedAt
	if a.msg.Data == nil {
		a.msg.Data = map[string]any{}
	}
	a.msg.Data["kind"], a.msg.Data["event"], a.msg.Data["subject"], a.msg.Data["link"] = a.kind, e.Type, e.Subject, a.msg.Link
	var out []Delivery
	add := func(d Delivery) {
		if _, ok := p.Channels[d.Channel]; !ok || d.Target == "" {
			return
		}
		for _, o := range out {
			if o.Channel == d.Channel && o.Target == d.Target {
				return
			}
		}
		out = append(out, d)
	}
	for _, name := range a.people {
		u, err := p.Store.UserGetByUsername(ctx, name)
		if err != nil || u.Disabled {
			continue
		}
		off := map[string]bool{}
		subs, err := p.Store.SubscriptionList(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		for _, s := range subs {
			if s.Kind == a.kind && !s.Enabled {
				off[s.Channel] = true
			}
		}
		ds, err := p.reach(ctx, u, off)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			add(d)
		}
	}
	var routes []Route
	if a.owner != "" {
		routes = append(routes, p.Owners[a.owner]...)
	}
	if a.procedure != "" && p.ProcedureRoutes != nil {
		rs, err := p.ProcedureRoutes(ctx, a.procedure)
		if err != nil {
			return nil, err
		}
		routes = append(routes, rs...)
	}
	for _, r := range routes {
		if !r.wants(a.kind) {
			continue
		}
		for _, addr := range r.Email {
			add(Delivery{Channel: "email", Target: addr})
		}
		add(Delivery{Channel: "slack", Target: r.Slack})
		if r.Teams != "" {
			add(Delivery{Channel: "teams:" + r.Teams, Target: r.Teams})
		}
		for _, w := range r.Webhooks {
			add(Delivery{Channel: "webhook:" + w, Target: w})
		}
	}
	names := make([]string, 0, len(p.Webhooks))
	for n := range p.Webhooks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if ks := p.Webhooks[n]; len(ks) == 0 || slices.Contains(ks, a.kind) {
			add(Delivery{Channel: "webhook:" + n, Target: n})
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return &Planned{Message: a.msg, Targets: out}, nil
}

// test plans a test message through one channel (the entry's subject):
// to a webhook or Teams channel as such, by email and Slack to whoever
// asked for it.
func (p *Planner) test(ctx context.Context, e *store.OutboxEntry) (*Planned, error) {
	ev, err := p.Store.AuditGet(ctx, e.EventSeq)
	if err != nil {
		return nil, err
	}
	m := &Message{Kind: KindTest, Type: e.Type, Subject: e.Subject, Time: e.CreatedAt, Link: p.link("/admin"),
		Title: "Airlock test message", Text: fmt.Sprintf("%s asked Airlock to send this through %s: it works.", ev.ActorName, e.Subject),
		Data: map[string]any{"kind": KindTest, "event": e.Type, "subject": e.Subject, "requested_by": ev.ActorName}}
	channel, name, _ := strings.Cut(e.Subject, ":")
	var targets []Delivery
	switch channel {
	case "webhook", "teams":
		targets = append(targets, Delivery{Channel: e.Subject, Target: name})
	case "email", "slack":
		u, err := p.Store.UserGetByID(ctx, ev.ActorID)
		if err != nil {
			return nil, err
		}
		// Only the channel tested: the others are off.
		if targets, err = p.reach(ctx, u, map[string]bool{"email": channel != "email", "slack": channel != "slack"}); err != nil {
			return nil, err
		}
	}
	if len(targets) == 0 {
		return nil, nil
	}
	return &Planned{Message: m, Targets: targets}, nil
}

// reach is where u is reached in person: their account's email address,
// their linked Slack accounts — but the channels off names.
func (p *Planner) reach(ctx context.Context, u *store.User, off map[string]bool) ([]Delivery, error) {
	r := &Recipient{UserID: u.ID, Username: u.Username, Email: u.Email}
	var out []Delivery
	if !off["email"] && u.Email != "" {
		out = append(out, Delivery{Channel: "email", Target: u.Email, Recipient: r})
	}
	if !off["slack"] && p.SlackIDs != nil {
		ids, err := p.SlackIDs(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			out = append(out, Delivery{Channel: "slack", Target: id, Recipient: r})
		}
	}
	return out, nil
}

func (p *Planner) link(path string) string { return strings.TrimRight(p.PublicURL, "/") + path }

func (p *Planner) about(ctx context.Context, e *store.OutboxEntry) (*about, error) {
	var d map[string]any
	actor := "Airlock" // who did it, named in some titles
	if e.EventSeq >= 0 {
		ev, err := p.Store.AuditGet(ctx, e.EventSeq)
		if err != nil {
			return nil, err
		}
		_ = json.Unmarshal(ev.Details, &d)
		if ev.ActorName != "" {
			actor = ev.ActorName
		}
	}
	str := func(k string) string { s, _ := d[k].(string); return s }
	switch e.Type {
	case RunRequest, RunApprove, RunDeny, RunStart, RunFinish, RunCancel, RunExpire, RunExpiring:
		r, err := p.Store.RunGet(ctx, e.Subject)
		if err != nil {
			return nil, err
		}
		a := &about{procedure: r.ProcedureName, msg: p.runMessage(r)}
		if proc, err := p.Store.ProcedureGetByName(ctx, r.ProcedureName); err == nil {
			a.owner = proc.Owner
		}
		switch e.Type {
		case RunRequest:
			if str("status") != store.RunPending {
				return nil, nil
			}
			a.kind = KindApprovalNeeded
			if a.people, err = p.Directory.RunApprovers(ctx, r); err != nil {
				return nil, err
			}
			a.msg.Title = fmt.Sprintf("%s asks to run %s in %s", r.RequesterName, r.ProcedureName, r.Environment)
			a.msg.Text = "It waits for your approval. You approve exactly what is shown: a changed run needs a new approval."
			value := r.ID + " " + r.Binding
			a.msg.Actions = []Action{{Name: "approve", Label: "Approve", Value: value}, {Name: "deny", Label: "Deny", Value: value}}
		case RunApprove, RunDeny:
			a.kind, a.people = KindApprovalDecided, []string{r.RequesterName}
			verb := "approved"
			if e.Type == RunDeny {
				verb = "denied"
			}
			a.msg.Title = fmt.Sprintf("%s %s your run of %s in %s", actor, verb, r.ProcedureName, r.Environment)
			if c := str("comment"); c != "" {
				a.msg.Text = "Comment: " + c
			}
		case RunStart:
			a.kind, a.people = KindRunStarted, []string{r.RequesterName}
			a.msg.Title = fmt.Sprintf("Your run of %s in %s started", r.ProcedureName, r.Environment)
		case RunFinish, RunCancel:
			status := str("status")
			if e.Type == RunCancel && status != store.RunCanceled {
				return nil, nil // a running run ends with run.finish
			}
			if status == "" {
				status = r.Status
			}
			a.kind, a.people = KindRunFinished, []string{r.RequesterName}
			a.msg.Title = fmt.Sprintf("Your run of %s in %s %s", r.ProcedureName, r.Environment, status)
			if r.Error != "" {
				a.msg.Text = r.Error
			}
			a.msg.Data["status"] = status
		case RunExpire, RunExpiring:
			people, err := p.Directory.RunApprovers(ctx, r)
			if err != nil {
				return nil, err
			}
			a.people = append(people, r.RequesterName)
			if e.Type == RunExpire {
				a.kind = KindApprovalExpired
				a.msg.Title = fmt.Sprintf("The request to run %s in %s expired unapproved", r.ProcedureName, r.Environment)
			} else {
				if r.Status != store.RunPending {
					return nil, nil
				}
				a.kind = KindApprovalExpiring
				a.msg.Title = fmt.Sprintf("The request to run %s in %s expires at %s", r.ProcedureName, r.Environment,
					r.ExpiresAt.UTC().Format("15:04 UTC"))
			}
		}
		return a, nil
	case VersionPropose, VersionActivate, VersionReject:
		v, err := p.Store.ProcedureVersionGet(ctx, e.Subject)
		if err != nil {
			return nil, err
		}
		a := &about{procedure: v.ProcedureName, msg: &Message{Link: p.link("/versions/" + v.ID),
			Fields: []Field{{"Procedure", v.ProcedureName}, {"Version", fmt.Sprint(v.Number)}, {"Risk", v.Risk},
				{"Digest", short(v.Digest)}, {"Author", v.AuthorName}},
			Data: map[string]any{"version_id": v.ID, "procedure": v.ProcedureName, "number": v.Number, "risk": v.Risk,
				"digest": v.Digest, "author": v.AuthorName}}}
		if proc, err := p.Store.ProcedureGetByName(ctx, v.ProcedureName); err == nil {
			a.owner = proc.Owner
		}
		switch e.Type {
		case VersionPropose:
			a.kind = KindReviewNeeded
			if a.people, err = p.Directory.Reviewers(ctx, v); err != nil {
				return nil, err
			}
			a.msg.Title = fmt.Sprintf("%s proposes version %d of %s: it waits for your review", v.AuthorName, v.Number, v.ProcedureName)
		case VersionActivate:
			a.kind, a.people = KindReviewDecided, []string{v.AuthorName}
			a.msg.Title = fmt.Sprintf("Version %d of %s is approved and in service", v.Number, v.ProcedureName)
		case VersionReject:
			a.kind, a.people = KindReviewDecided, []string{v.AuthorName}
			a.msg.Title = fmt.Sprintf("%s rejected version %d of %s", actor, v.Number, v.ProcedureName)
			a.msg.Text = "Comment: " + str("comment")
		}
		return a, nil
	case PolicyPropose:
		pv, err := p.Store.PolicyVersionGet(ctx, e.Subject)
		if err != nil {
			return nil, err
		}
		people, err := p.Directory.Permitted(ctx, "managePolicy")
		if err != nil {
			return nil, err
		}
		return &about{kind: KindPolicyNeeded, people: without(people, pv.AuthorName), msg: &Message{
			Title:  fmt.Sprintf("%s proposes policy v%d: it waits for a second admin", pv.AuthorName, pv.Number),
			Text:   pv.Description,
			Link:   p.link("/policies"),
			Fields: []Field{{"Policy", fmt.Sprintf("v%d", pv.Number)}, {"Digest", short(pv.Digest)}, {"Author", pv.AuthorName}},
			Data:   map[string]any{"policy_id": pv.ID, "number": pv.Number, "digest": pv.Digest, "author": pv.AuthorName},
		}}, nil
	case SchedulePropose, ScheduleResume, ScheduleActivate, ScheduleDeny, ScheduleSuspend,
		TriggerPropose, TriggerResume, TriggerActivate, TriggerDeny, TriggerSuspend:
		return p.aboutStanding(ctx, e, actor, str)
	case UserChange:
		c, err := p.Store.UserChangeGet(ctx, e.Subject)
		if err != nil {
			return nil, err
		}
		if c.Status != store.UserChangePending {
			return nil, nil
		}
		people, err := p.Directory.Permitted(ctx, "manageUsers")
		if err != nil {
			return nil, err
		}
		summary := str("summary")
		if summary == "" {
			summary = c.Kind + " " + c.Username
		}
		return &about{kind: KindUserChangeNeeded, people: without(without(people, c.AuthorName), c.Username), msg: &Message{
			Title:  fmt.Sprintf("%s proposes a user change: it waits for a second admin", c.AuthorName),
			Text:   summary,
			Link:   p.link("/admin"),
			Fields: []Field{{"Change", c.Kind}, {"User", c.Username}, {"Author", c.AuthorName}},
			Data:   map[string]any{"change_id": c.ID, "change": c.Kind, "username": c.Username, "author": c.AuthorName},
		}}, nil
	}
	return nil, nil
}

// aboutStanding: a proposed schedule or trigger goes to those who could
// approve it; its activation, denial or suspension to its proposer and
// the procedure's owner team.
func (p *Planner) aboutStanding(ctx context.Context, e *store.OutboxEntry, actor string, str func(string) string) (*about, error) {
	st, err := p.Store.StandingGet(ctx, e.Subject)
	if err != nil {
		return nil, err
	}
	what := st.Kind
	a := &about{procedure: st.ProcedureName, msg: &Message{Link: p.link("/" + what + "s/" + st.Name),
		Fields: []Field{{"Procedure", st.ProcedureName}, {"Environment", st.Environment}, {"Proposed by", st.ProposerName},
			{"Digest", short(st.Digest)}},
		Data: map[string]any{"standing_id": st.ID, "standing_kind": what, "name": st.Name, "procedure": st.ProcedureName,
			"environment": st.Environment, "status": st.Status, "reason": st.StatusReason, "proposer": st.ProposerName}}}
	if proc, err := p.Store.ProcedureGetByName(ctx, st.ProcedureName); err == nil {
		a.owner = proc.Owner
	}
	verb := e.Type[strings.IndexByte(e.Type, '.')+1:]
	switch verb {
	case "propose", "resume":
		if st.Status != store.StandingPending {
			return nil, nil
		}
		a.kind = KindStandingNeeded
		if a.people, err = p.Directory.StandingApprovers(ctx, st); err != nil {
			return nil, err
		}
		a.owner = "" // the team hears of the outcome
		a.msg.Title = fmt.Sprintf("%s proposes the %s %s (%s in %s): it waits for your approval", st.ProposerName, what, st.Name,
			st.ProcedureName, st.Environment)
		a.msg.Text = "Once approved it starts runs on its own, bound to what you approve; a new version or a policy change suspends it."
	case "activate":
		a.kind, a.people = KindStandingChanged, []string{st.ProposerName}
		a.msg.Title = fmt.Sprintf("The %s %s is approved and active", what, st.Name)
	case "deny":
		a.kind, a.people = KindStandingChanged, []string{st.ProposerName}
		a.msg.Title = fmt.Sprintf("%s denied the %s %s", actor, what, st.Name)
		a.msg.Text = "Comment: " + str("comment")
	case "suspend":
		a.kind, a.people = KindStandingChanged, []string{st.ProposerName}
		a.msg.Title = fmt.Sprintf("The %s %s is suspended: it starts no runs until approved again", what, st.Name)
		a.msg.Text = str("reason")
	default:
		return nil, nil
	}
	return a, nil
}

// runMessage is the facts of a run: what will run where, never a secret
// (secret parameters are stored apart and never read here).
func (p *Planner) runMessage(r *store.Run) *Message {
	var params map[string]any
	_ = json.Unmarshal(r.Params, &params)
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ps []string
	for _, k := range keys {
		b, _ := json.Marshal(params[k])
		ps = append(ps, k+"="+string(b))
	}
	fields := []Field{{"Procedure", r.ProcedureName}, {"Version", short(r.Digest)}, {"Environment", r.Environment},
		{"Parameters", orNone(strings.Join(ps, " "))}, {"Targets", orNone(strings.Join(r.Targets, ", "))},
		{"Requester", r.RequesterName}, {"Reason", orNone(r.Reason)}}
	if r.Ticket != "" {
		fields = append(fields, Field{"Ticket", r.Ticket})
	}
	if !r.ExpiresAt.IsZero() && r.Status == store.RunPending {
		fields = append(fields, Field{"Expires", r.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")})
	}
	return &Message{Link: p.link("/runs/" + r.ID), Fields: fields, Data: map[string]any{
		"run_id": r.ID, "procedure": r.ProcedureName, "digest": r.Digest, "environment": r.Environment, "params": params,
		"targets": r.Targets, "requester": r.RequesterName, "reason": r.Reason, "ticket": r.Ticket, "status": r.Status,
		"expires_at": timeOrNil(r.ExpiresAt)}}
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func without(names []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == name })
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}
