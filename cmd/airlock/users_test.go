package main

import (
	"regexp"
	"strings"
	"testing"
)

var changeID = regexp.MustCompile(`uch_[0-9a-z]+`)

// TestUserChangesFromTheCLI: a user, a membership and re-enabling are
// proposed by one admin and in force when another approves; the
// approver, not the author, receives a new user's one-time password.
func TestUserChangesFromTheCLI(t *testing.T) {
	as := inProcess(t)
	root1, root2, alice := as("root1"), as("root2"), as("alice")
	code, out, stderr := root1.run("users", "create", "frank", "--group", "qa")
	if code != 0 || !strings.Contains(out, "Proposed") || !strings.Contains(out, "create user frank in qa") || strings.Contains(out, "password") {
		t.Fatalf("create: %d %s %s", code, out, stderr)
	}
	id := changeID.FindString(out)
	if code, _, stderr := root1.run("users", "changes", "approve", id); code != 1 || !strings.Contains(stderr, "second admin") {
		t.Fatalf("root1 approves his own change: %d %s", code, stderr)
	}
	if code, out, _ := root2.run("users", "changes", "list"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "root1") {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, _, _ := alice.run("users", "changes", "list"); code != 1 {
		t.Fatalf("alice lists user changes: %d", code)
	}
	code, out, stderr = root2.run("users", "changes", "approve", id, "--comment", "new QA hire")
	if code != 0 || !strings.Contains(out, "approved") || !strings.Contains(out, "One-time password for frank") {
		t.Fatalf("root2 approves: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := root1.run("groups", "add-member", "ops", "frank"); code != 0 || !strings.Contains(out, "add frank to ops") {
		t.Fatalf("add-member: %d %s %s", code, out, stderr)
	} else {
		id = changeID.FindString(out)
	}
	if code, _, stderr := root2.run("users", "changes", "reject", id); code != 1 || !strings.Contains(stderr, "comment") {
		t.Fatalf("reject without a comment: %d %s", code, stderr)
	}
	if code, out, _ := root2.run("users", "changes", "reject", id, "--comment", "not ops"); code != 0 || !strings.Contains(out, "rejected") {
		t.Fatalf("reject: %d %s", code, out)
	}
	if code, out, _ := root1.run("users", "list"); code != 0 || !strings.Contains(out, "frank") || strings.Contains(out, "qa,ops") {
		t.Fatalf("users: %s", out)
	}
	if code, out, _ := root1.run("users", "disable", "frank"); code != 0 || !strings.Contains(out, "frank disabled") {
		t.Fatalf("disable: %d %s", code, out)
	}
	code, out, _ = root1.run("users", "enable", "frank")
	if code != 0 || !strings.Contains(out, "enable user frank") {
		t.Fatalf("enable: %d %s", code, out)
	}
	id = changeID.FindString(out)
	if code, out, _ := root1.run("users", "changes", "withdraw", id); code != 0 || !strings.Contains(out, "withdrawn") {
		t.Fatalf("withdraw: %d %s", code, out)
	}
	if code, out, _ := root1.run("users", "changes", "list", "--status", "all", "-o", "json"); code != 0 || strings.Count(out, `"status": "`) != 3 {
		t.Fatalf("all changes: %s", out)
	}
}

// TestResetPasswordFromTheCLI: one admin proposes a reset and sees no
// password; the other approves and receives it.
func TestResetPasswordFromTheCLI(t *testing.T) {
	as := inProcess(t)
	root1, root2 := as("root1"), as("root2")
	code, out, stderr := root1.run("users", "reset-password", "alice")
	if code != 0 || !strings.Contains(out, "reset the password of alice") || strings.Contains(out, "One-time password") {
		t.Fatalf("reset-password: %d %s %s", code, out, stderr)
	}
	id := changeID.FindString(out)
	if code, _, stderr := root1.run("users", "changes", "approve", id); code != 1 || !strings.Contains(stderr, "second admin") {
		t.Fatalf("root1 approves his own reset: %d %s", code, stderr)
	}
	code, out, stderr = root2.run("users", "changes", "approve", id)
	if code != 0 || !strings.Contains(out, "One-time password for alice") || !strings.Contains(out, "sessions ended") {
		t.Fatalf("root2 approves: %d %s %s", code, out, stderr)
	}
}

var tokenID = regexp.MustCompile(`tok_[0-9a-z]+`)

// TestServiceAccountFromTheCLI: a service account is proposed with
// --service and --owner-team, in force when another admin approves (no
// password for anyone), listed with its kind, and its owner team makes,
// lists and revokes its tokens with --for; others cannot.
func TestServiceAccountFromTheCLI(t *testing.T) {
	as := inProcess(t)
	root1, root2, alice, bob := as("root1"), as("root2"), as("alice"), as("bob")
	if code, _, stderr := root1.run("users", "create", "ci", "--service", "--owner-team", "no-such-team"); code != 1 || !strings.Contains(stderr, "owner_team") {
		t.Fatalf("an unknown owner team: %d %s", code, stderr)
	}
	code, out, stderr := root1.run("users", "create", "payments-ci", "--service", "--owner-team", "payments", "--group", "payments")
	if code != 0 || !strings.Contains(out, "create service account payments-ci owned by payments in payments") {
		t.Fatalf("create: %d %s %s", code, out, stderr)
	}
	code, out, stderr = root2.run("users", "changes", "approve", changeID.FindString(out))
	if code != 0 || strings.Contains(out, "One-time password") || !strings.Contains(out, "tokens create NAME --for payments-ci") {
		t.Fatalf("approve: %d %s %s", code, out, stderr)
	}
	if code, out, _ := root1.run("users", "list"); code != 0 || !regexp.MustCompile(`payments-ci\s+service\s+payments`).MatchString(out) ||
		!regexp.MustCompile(`alice\s+person\s+-`).MatchString(out) {
		t.Fatalf("users list: %s", out)
	}
	if code, _, stderr := bob.run("tokens", "create", "ci", "--for", "payments-ci", "--scope", "propose"); code != 1 || !strings.Contains(stderr, "not permitted") {
		t.Fatalf("bob, not in payments, makes its token: %d %s", code, stderr)
	}
	code, out, stderr = alice.run("tokens", "create", "github", "--for", "payments-ci", "--scope", "propose", "--ttl", "720h")
	if code != 0 || !strings.HasPrefix(out, "alt_") {
		t.Fatalf("alice makes its token: %d %s %s", code, out, stderr)
	}
	id := tokenID.FindString(out)
	if code, out, _ := alice.run("tokens", "list", "--for", "payments-ci"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "propose") {
		t.Fatalf("tokens list --for: %d %s", code, out)
	}
	if code, out, _ := alice.run("tokens", "list"); code != 0 || strings.Contains(out, id) {
		t.Fatalf("alice's own tokens show the account's: %s", out)
	}
	if code, out, stderr := alice.run("tokens", "revoke", id, "--for", "payments-ci"); code != 0 || !strings.Contains(out, "Revoked") {
		t.Fatalf("revoke --for: %d %s %s", code, out, stderr)
	}
}
