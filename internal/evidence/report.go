package evidence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// Finding is one line under a control: an exception (the control did not
// hold) or a refused attempt (the control held against it).
type Finding struct {
	Ref    string `json:"ref"`
	Detail string `json:"detail"`
}

// Control is one control the bundle evidences.
type Control struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	Frameworks []string  `json:"frameworks"`
	Statement  string    `json:"statement"`
	Checked    int       `json:"checked"`
	Exceptions []Finding `json:"exceptions"`
	Attempts   []Finding `json:"refused_attempts"`
}

// Summary is summary.json: what the report says, machine-readable.
type Summary struct {
	Events   int       `json:"events"`
	Runs     int       `json:"runs"`
	Controls []Control `json:"controls"`
	// Unattended are the runs a schedule or trigger started, with the
	// standing approval each ran under.
	Unattended []UnattendedRun `json:"unattended_runs"`
	// TryRuns ran proposed, unreviewed versions in try environments:
	// listed apart, never evidence of an approved change.
	TryRuns []TryRun `json:"try_runs"`
}

// TryRun is a run of an unreviewed version in a try environment.
type TryRun struct {
	Run         string `json:"run"`
	Procedure   string `json:"procedure"`
	VersionID   string `json:"version_id"`
	Environment string `json:"environment"`
	Requester   string `json:"requester"`
}

// UnattendedRun is a run started by a schedule or an event trigger, and
// the standing approval in force when it was requested.
type UnattendedRun struct {
	Run         string    `json:"run"`
	Kind        string    `json:"kind"`
	Name        string    `json:"name"`
	StandingID  string    `json:"standing_id"`
	Proposer    string    `json:"proposer"`
	Approvers   []string  `json:"approvers"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	Binding     string    `json:"binding,omitempty"`
}

// standingHistory is what the bundle's events say about one schedule or
// trigger, in log order.
type standingHistory []*store.AuditEvent

// inForceAt returns the activation in force at t, or nil with why not:
// the latest activation at or before t, not followed (before t) by a
// pause, suspension, denial or deletion.
func (h standingHistory) inForceAt(t time.Time) (*store.AuditEvent, string) {
	var act *store.AuditEvent
	why := "no standing approval in the bundle"
	for _, e := range h {
		if e.Time.After(t) {
			break
		}
		switch verb := e.Type[strings.IndexByte(e.Type, '.')+1:]; verb {
		case "activate":
			act, why = e, ""
		case "resume":
			if d := details(e); d["status"] == store.StandingActive {
				act, why = e, ""
			} else {
				act, why = nil, "proposed again and not yet approved"
			}
		case "pause", "suspend", "deny", "delete":
			past := map[string]string{"pause": "paused", "suspend": "suspended", "deny": "denied", "delete": "deleted"}[verb]
			act, why = nil, fmt.Sprintf("%s at %s", past, e.Time.UTC().Format(time.RFC3339))
		}
	}
	return act, why
}

// proposerAt is who proposed it, as of the event at position seq.
func (h standingHistory) proposerAt(seq int64) string {
	who := ""
	for _, e := range h {
		if e.Seq > seq {
			break
		}
		if strings.HasSuffix(e.Type, ".propose") {
			who = e.ActorName
		}
	}
	return who
}

// approversOf returns who approved the activation act (from its own
// details, or from the activation a resume restored).
func (h standingHistory) approversOf(act *store.AuditEvent) []string {
	for i := len(h) - 1; i >= 0; i-- {
		e := h[i]
		if e.Seq > act.Seq || !strings.HasSuffix(e.Type, ".activate") {
			continue
		}
		var out []string
		as, _ := details(e)["approvers"].([]any)
		for _, a := range as {
			out = append(out, str(a))
		}
		return out
	}
	return nil
}

func details(e *store.AuditEvent) map[string]any {
	var d map[string]any
	_ = json.Unmarshal(e.Details, &d)
	return d
}

// links says which accounts count as one person for separation of
// duties: one created the other, or granted it a group (user.create and
// group.member_add events, with the proposer of an approved change). It
// is keyed by user ID and by username alike.
type links map[[2]string]string

func (l links) add(a, b, why string) {
	if a == "" || b == "" || a == b {
		return
	}
	if a > b {
		a, b = b, a
	}
	if _, ok := l[[2]string{a, b}]; !ok {
		l[[2]string{a, b}] = why
	}
}

// between is how a and b are linked, or "".
func (l links) between(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return l[[2]string{a, b}]
}

// among is the first link between who and any of others.
func (l links) among(who string, others []string) (string, string) {
	for _, o := range others {
		if why := l.between(who, o); why != "" {
			return o, why
		}
	}
	return "", ""
}

func str(v any) string { s, _ := v.(string); return s }

// accountOrigins reads the links from the events, and says of each
// user.create or group.member_add event whether it was a change under
// dual control ("change" in its details) or made by an admin alone.
func accountOrigins(events []*store.AuditEvent) links {
	l := links{}
	for _, e := range events {
		if e.Type == "token.create" {
			// Whoever made a service account's token held its credential:
			// they count as the account.
			if d := details(e); d["service_account"] == true && e.ActorID != "" {
				why := fmt.Sprintf("%s's account was given an API token by %s (event %d)", str(d["username"]), e.ActorName, e.Seq)
				l.add(str(d["user_id"]), e.ActorID, why)
				l.add(str(d["username"]), e.ActorName, why)
			}
			continue
		}
		if e.Type != "user.create" && e.Type != "group.member_add" {
			continue
		}
		d := details(e)
		byID, byName := e.ActorID, e.ActorName
		if p := str(d["proposed_by_id"]); p != "" {
			if p == e.ActorID {
				continue // in force at once while setting up: no link
			}
			byID, byName = p, str(d["proposed_by"])
		}
		if byID == "" || d["source"] == "sso" {
			continue // the system, the demo, the identity provider
		}
		userID, what := e.Subject, "created by "+byName
		if e.Type == "group.member_add" {
			userID, what = str(d["user_id"]), fmt.Sprintf("granted %s by %s", str(d["group"]), byName)
		}
		why := fmt.Sprintf("%s's account was %s (event %d)", str(d["username"]), what, e.Seq)
		l.add(userID, byID, why)
		l.add(str(d["username"]), byName, why)
		if e.Type == "user.create" && byID != e.ActorID {
			// The approver of a new user received its one-time password.
			why := fmt.Sprintf("%s's account was given its one-time password as approver %s (event %d)", str(d["username"]), e.ActorName, e.Seq)
			l.add(userID, e.ActorID, why)
			l.add(str(d["username"]), e.ActorName, why)
		}
	}
	return l
}

// Summarize evaluates the controls over the bundle's contents: events
// before from are there only to show who created or granted a group to
// whom.
func Summarize(events []*store.AuditEvent, runs []RunRecord, versions []VersionRecord, policies []*store.PolicyVersion, from time.Time) Summary {
	linked := accountOrigins(events)
	approved := map[string]bool{}
	for _, v := range versions {
		switch v.Status {
		case store.VersionApproved, store.VersionSuperseded, store.VersionRetired:
			approved[v.ID] = true
		}
	}
	change := Control{ID: "approved-versions-only", Title: "Every run executed an approved version of its procedure",
		Frameworks: []string{"SOC 2 CC8.1", "ISO 27001 A.8.32"},
		Statement:  "Runs record the digest of the version they execute; the executor re-checks at start that it is the approved, active version and refuses otherwise."}
	fourEyes := Control{ID: "four-eyes-runs", Title: "Runs that needed an approval had it from other people",
		Frameworks: []string{"SOC 2 CC6.3", "ISO 27001 A.5.3"},
		Statement:  "Approvals bind to the run's digest, parameters and targets, count distinct people, and are never the requester's."}
	access := Control{ID: "permitted-requesters", Title: "Every run was requested by someone policy permitted",
		Frameworks: []string{"SOC 2 CC6.1", "ISO 27001 A.5.15"},
		Statement:  "Each request passes the Cedar authorizer; refused requests are audited with the deciding policies."}
	standing := Control{ID: "standing-approvals", Title: "Every unattended run ran under a standing approval by someone other than its proposer",
		Frameworks: []string{"SOC 2 CC6.3", "SOC 2 CC8.1", "ISO 27001 A.5.3"},
		Statement: "Schedules and event triggers start runs only while active: approved once by people other than their proposer, bound to the procedure's version digest " +
			"(and a schedule's parameters and targets); a new version, changed targets or a policy that no longer permits it suspends them until approved again."}
	histories := map[string]standingHistory{}
	for _, e := range events {
		if e.Subject != "" && (strings.HasPrefix(e.Type, "schedule.") || strings.HasPrefix(e.Type, "trigger.")) {
			histories[e.Subject] = append(histories[e.Subject], e)
		}
	}
	var unattended []UnattendedRun
	for _, r := range runs {
		if r.StandingID == "" {
			continue
		}
		standing.Checked++
		h := histories[r.StandingID]
		u := UnattendedRun{Run: r.ID, StandingID: r.StandingID, Kind: "schedule", Binding: r.Binding}
		if strings.HasPrefix(r.StandingID, "trg_") {
			u.Kind = "trigger"
		}
		act, why := h.inForceAt(r.CreatedAt)
		if act == nil {
			standing.Exceptions = append(standing.Exceptions, Finding{r.ID, fmt.Sprintf("requested by %s %s while it was not approved: %s", u.Kind, r.StandingID, why)})
			unattended = append(unattended, u)
			continue
		}
		u.Name, u.ActivatedAt = str(details(act)["name"]), act.Time
		u.Proposer, u.Approvers = h.proposerAt(act.Seq), h.approversOf(act)
		if len(u.Approvers) == 0 {
			standing.Exceptions = append(standing.Exceptions, Finding{r.ID, fmt.Sprintf("%s %s was active with no approver", u.Kind, u.Name)})
		}
		for _, a := range u.Approvers {
			if a == u.Proposer {
				standing.Exceptions = append(standing.Exceptions, Finding{r.ID, fmt.Sprintf("%s %s was approved by its proposer %s", u.Kind, u.Name, a)})
			} else if why := linked.between(a, u.Proposer); why != "" {
				standing.Exceptions = append(standing.Exceptions, Finding{r.ID, fmt.Sprintf("%s %s was approved by %s, who counts as its proposer %s: %s", u.Kind, u.Name, a, u.Proposer, why)})
			}
		}
		unattended = append(unattended, u)
	}
	for _, e := range events {
		if !e.Time.Before(from) && strings.HasSuffix(e.Type, ".approve_denied") && (strings.HasPrefix(e.Type, "schedule.") || strings.HasPrefix(e.Type, "trigger.")) {
			standing.Attempts = append(standing.Attempts, Finding{e.Subject, fmt.Sprintf("%s: %v", e.ActorName, details(e)["reason"])})
		}
	}
	tries := []TryRun{}
	for _, r := range runs {
		if r.StartedAt.IsZero() {
			continue
		}
		if r.Try {
			tries = append(tries, TryRun{Run: r.ID, Procedure: r.ProcedureName, VersionID: r.VersionID, Environment: r.Environment, Requester: r.RequesterName})
			continue
		}
		change.Checked++
		if !approved[r.VersionID] {
			change.Exceptions = append(change.Exceptions, Finding{r.ID, fmt.Sprintf("ran version %s, which was never approved", r.VersionID)})
		}
		if r.Status == store.RunFailed && len(r.Error) > 17 && r.Error[:17] == "refused at start:" {
			change.Attempts = append(change.Attempts, Finding{r.ID, r.Error})
		}
		if r.ApprovalsRequired > 0 {
			fourEyes.Checked++
			got := map[string]bool{}
			for _, a := range r.Approvals {
				if a.Decision == "approve" && a.Binding == r.Binding && a.ApproverID != r.RequesterID {
					got[a.ApproverID] = true
				}
			}
			if len(got) < r.ApprovalsRequired {
				fourEyes.Exceptions = append(fourEyes.Exceptions, Finding{r.ID, fmt.Sprintf("started with %d of %d approvals from other people", len(got), r.ApprovalsRequired)})
			}
			counted := []string{r.RequesterID}
			names := map[string]string{r.RequesterID: r.RequesterName}
			// An event trigger's proposer holds its secret: the runs it
			// requests are theirs too.
			proposer := ""
			if strings.HasPrefix(r.StandingID, "trg_") && r.StandingID != r.RequesterID {
				for _, e := range histories[r.StandingID] {
					if strings.HasSuffix(e.Type, ".propose") && e.Time.Before(r.CreatedAt.Add(time.Nanosecond)) {
						proposer, names[e.ActorID] = e.ActorID, e.ActorName
					}
				}
				if proposer != "" {
					counted = append(counted, proposer)
				}
			}
			for _, a := range r.Approvals {
				if a.Decision != "approve" || a.Binding != r.Binding || a.ApproverID == r.RequesterID {
					continue
				}
				if proposer != "" && a.ApproverID == proposer {
					fourEyes.Exceptions = append(fourEyes.Exceptions, Finding{r.ID, fmt.Sprintf("approved by %s, who proposed the trigger %s that requested it", a.ApproverName, r.StandingID)})
				}
				if o, why := linked.among(a.ApproverID, counted); why != "" {
					fourEyes.Exceptions = append(fourEyes.Exceptions, Finding{r.ID, fmt.Sprintf("approved by %s, who counts as %s: %s", a.ApproverName, names[o], why)})
				}
				counted, names[a.ApproverID] = append(counted, a.ApproverID), a.ApproverName
			}
		}
	}
	review := Control{ID: "procedure-review-quorum", Title: "Every procedure version in service had its review quorum",
		Frameworks: []string{"SOC 2 CC8.1", "ISO 27001 A.8.32"},
		Statement:  "Versions activate only when reviewers from each required group approve the digest; authors never review their own."}
	dual := Control{ID: "policy-dual-control", Title: "Every policy change was approved by a second admin",
		Frameworks: []string{"SOC 2 CC6.1", "ISO 27001 A.5.15", "ISO 27001 A.8.32"},
		Statement:  "A policy change takes effect only after another admin approves it; self-approval is refused and audited."}
	users := Control{ID: "user-dual-control", Title: "Every new user, group membership and re-enabled user was approved by a second admin",
		Frameworks: []string{"SOC 2 CC6.2", "ISO 27001 A.5.16", "ISO 27001 A.5.18"},
		Statement: "User changes take effect only after an admin other than the author, and not an account the author created or granted a group, approves; " +
			"an account counts as the person who created it or granted it a group for every approval it gives."}
	logging := Control{ID: "audit-log-integrity", Title: "The audit trail is complete and unaltered",
		Frameworks: []string{"SOC 2 CC7.2", "ISO 27001 A.8.15"},
		Statement: "Every event in this bundle carries an inclusion proof against a checkpoint signed by the log's key; " +
			"every run's output hashes to the digest its run.finish event certifies, or a run.output_prune event in the bundle removed it."}
	logging.Checked = len(events)
	for _, r := range runs {
		if r.OutputProblem != "" {
			logging.Exceptions = append(logging.Exceptions, Finding{r.ID, r.OutputProblem})
		}
	}
	for _, e := range events {
		d := details(e)
		switch e.Type {
		case "procedure_version.activate":
			review.Checked++
			approvers, _ := d["approvers"].([]any)
			quorum, _ := d["quorum"].([]any)
			for _, a := range approvers {
				if a == d["author"] {
					review.Exceptions = append(review.Exceptions, Finding{e.Subject, fmt.Sprintf("approved by its author %v", a)})
				}
			}
			counted := []string{str(d["author"])}
			for _, a := range approvers {
				if o, why := linked.among(str(a), counted); why != "" {
					review.Exceptions = append(review.Exceptions, Finding{e.Subject, fmt.Sprintf("approved by %v, who counts as %s: %s", a, o, why)})
				}
				counted = append(counted, str(a))
			}
			if len(approvers) < len(quorum) {
				review.Exceptions = append(review.Exceptions, Finding{e.Subject, fmt.Sprintf("%d approvals for a quorum of %d", len(approvers), len(quorum))})
			}
		case "procedure_version.review_denied":
			review.Attempts = append(review.Attempts, Finding{e.Subject, fmt.Sprintf("%s: %v", e.ActorName, d["reason"])})
		case "policy.approve":
			dual.Checked++
			if d["author"] == e.ActorName {
				dual.Exceptions = append(dual.Exceptions, Finding{e.Subject, fmt.Sprintf("approved by its author %s", e.ActorName)})
			} else if why := linked.between(e.ActorName, str(d["author"])); why != "" {
				dual.Exceptions = append(dual.Exceptions, Finding{e.Subject, fmt.Sprintf("approved by %s, who counts as its author %v: %s", e.ActorName, d["author"], why)})
			}
		case "user_change.approve":
			users.Checked++
			switch {
			case d["sole_admin"] == true:
				users.Exceptions = append(users.Exceptions, Finding{e.Subject, fmt.Sprintf("%v: in force at once, proposed by %s while no other admin existed", d["kind"], e.ActorName)})
			case d["author"] == e.ActorName:
				users.Exceptions = append(users.Exceptions, Finding{e.Subject, fmt.Sprintf("approved by its author %s", e.ActorName)})
			default:
				if why := linked.between(e.ActorName, str(d["author"])); why != "" {
					users.Exceptions = append(users.Exceptions, Finding{e.Subject, fmt.Sprintf("approved by %s, who counts as its author %v: %s", e.ActorName, d["author"], why)})
				}
			}
		case "user_change.approve_denied":
			users.Attempts = append(users.Attempts, Finding{e.Subject, fmt.Sprintf("%s: %v", e.ActorName, d["reason"])})
		case "user.create", "group.member_add":
			// Made by an admin alone, before dual control (a change has
			// "change"; the system, the demo and SSO have no actor ID).
			if e.Time.Before(from) || e.ActorID == "" || d["change"] != nil || d["source"] == "sso" {
				continue
			}
			users.Checked++
			users.Exceptions = append(users.Exceptions, Finding{e.Subject, fmt.Sprintf("%s by %s alone, before user changes were under dual control", e.Type, e.ActorName)})
		case "policy.approve_denied":
			dual.Attempts = append(dual.Attempts, Finding{e.Subject, fmt.Sprintf("%s: %v", e.ActorName, d["reason"])})
		case "run.approve_denied":
			fourEyes.Attempts = append(fourEyes.Attempts, Finding{e.Subject, fmt.Sprintf("%s: %v", e.ActorName, d["reason"])})
		case "run.deny":
			fourEyes.Attempts = append(fourEyes.Attempts, Finding{e.Subject, fmt.Sprintf("denied by %s: %v", e.ActorName, d["comment"])})
		case "authz.deny":
			if a := d["action"]; a == "run" || a == "request" {
				access.Attempts = append(access.Attempts, Finding{fmt.Sprint(d["resource"]), fmt.Sprintf("%s may not %v in %v (%v)", e.ActorName, a, d["environment"], d["reason"])})
			}
		case "run.request":
			access.Checked++
		}
	}
	controls := []Control{change, fourEyes, access, standing, review, dual, users, logging}
	for i := range controls {
		c := &controls[i]
		for _, l := range []*[]Finding{&c.Exceptions, &c.Attempts} {
			if *l == nil {
				*l = []Finding{}
			}
			sort.SliceStable(*l, func(a, b int) bool { return (*l)[a].Ref < (*l)[b].Ref })
		}
	}
	if unattended == nil {
		unattended = []UnattendedRun{}
	}
	return Summary{Events: len(events), Runs: len(runs), Controls: controls, Unattended: unattended, TryRuns: tries}
}

var reportTmpl = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Airlock evidence {{.From}} – {{.To}}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}
h2{margin-top:2rem;border-bottom:1px solid #ccc}.ok{color:#1a7f37}.bad{color:#b3261e}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee;vertical-align:top}code{font-size:13px}</style></head>
<body><main>
<h1>Airlock evidence report</h1>
<p>Period <strong>{{.From}}</strong> to <strong>{{.To}}</strong>{{if .Procedure}}, procedure <code>{{.Procedure}}</code>{{end}}{{if .Environment}}, environment <code>{{.Environment}}</code>{{end}}{{if .Run}}, run <code>{{.Run}}</code>{{end}}.
{{.Summary.Events}} audit events and {{.Summary.Runs}} runs. Every event carries an inclusion proof against the checkpoint below,
signed with the log's key <code>{{.Key}}</code>; verify the bundle offline with
<code>airlock evidence verify BUNDLE.zip --key KEY</code>.</p>
<pre>{{.Checkpoint}}</pre>
{{range .Summary.Controls}}
<h2>{{.Title}}</h2>
<p>{{range .Frameworks}}<code>{{.}}</code> {{end}}</p>
<p>{{.Statement}} Checked: {{.Checked}}.
{{if .Exceptions}}<strong class="bad">{{len .Exceptions}} exception(s).</strong>{{else}}<strong class="ok">No exceptions.</strong>{{end}}</p>
{{if .Exceptions}}<h3>Exceptions</h3><table>{{range .Exceptions}}<tr><td><code>{{.Ref}}</code></td><td>{{.Detail}}</td></tr>{{end}}</table>{{end}}
{{if .Attempts}}<h3>Refused attempts (the control held)</h3><table>{{range .Attempts}}<tr><td><code>{{.Ref}}</code></td><td>{{.Detail}}</td></tr>{{end}}</table>{{end}}
{{end}}
{{if .Summary.Unattended}}
<h2>Unattended runs</h2>
<p>Runs a schedule or an event trigger started, and the standing approval each ran under.</p>
<table><tr><th>Run</th><th>Started by</th><th>Proposed by</th><th>Approved by</th><th>Active since</th></tr>
{{range .Summary.Unattended}}<tr><td><code>{{.Run}}</code></td><td>{{.Kind}} {{.Name}} <code>{{.StandingID}}</code></td><td>{{.Proposer}}</td><td>{{range $i, $a := .Approvers}}{{if $i}}, {{end}}{{$a}}{{end}}</td><td>{{if not .ActivatedAt.IsZero}}{{.ActivatedAt.UTC.Format "2006-01-02 15:04 UTC"}}{{end}}</td></tr>
{{end}}</table>
{{end}}
{{if .Summary.TryRuns}}
<h2>Try runs (unreviewed)</h2>
<p>Runs of proposed, unreviewed versions in try environments, by their authors or owner teams, without secrets. They are not evidence of an approved change and are not counted above.</p>
<table><tr><th>Run</th><th>Procedure</th><th>Version</th><th>Environment</th><th>Requested by</th></tr>
{{range .Summary.TryRuns}}<tr><td><code>{{.Run}}</code></td><td>{{.Procedure}}</td><td><code>{{.VersionID}}</code></td><td>{{.Environment}}</td><td>{{.Requester}}</td></tr>
{{end}}</table>
{{end}}
</main></body></html>
`))

// Report renders the human-readable report.
func Report(s Summary, p Params, cp *store.Checkpoint, key string) []byte {
	var b bytes.Buffer
	_ = reportTmpl.Execute(&b, map[string]any{"Summary": s, "From": p.From.UTC().Format(time.RFC3339), "To": p.To.UTC().Format(time.RFC3339),
		"Procedure": p.Procedure, "Environment": p.Environment, "Run": p.Run, "Checkpoint": cp.Note, "Key": key})
	return b.Bytes()
}
