package api_test

import (
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
)

const encodeProc = `apiVersion: airlock/v1
kind: Procedure
name: encode-test
owner: payments
risk: low
parameters:
  - {name: password, type: secret, required: true}
steps:
  - name: encode
    script: |
      printf '%s' "$AIRLOCK_PARAM_PASSWORD" | base64
      printf '%s' "$AIRLOCK_PARAM_PASSWORD" | base64 | tr -d '='
      printf '%s' "$AIRLOCK_PARAM_PASSWORD" | basenc --base64url
      printf '%s' "$AIRLOCK_PARAM_PASSWORD" | od -An -v -tx1 | tr -d ' \n'; echo
      printf '%s' "$AIRLOCK_PARAM_PASSWORD" | basenc --base16
      printf 'user:%s' "$AIRLOCK_PARAM_PASSWORD" | base64
      printf 'u:%s\n' "$AIRLOCK_PARAM_PASSWORD" | base64
      printf 'us:%s\nmore' "$AIRLOCK_PARAM_PASSWORD" | base64
`

// TestEncodedSecretsAreRedacted: a step that prints a secret parameter
// base64- or hex-encoded, with coreutils, leaves [REDACTED] in the stored
// output, never the encoding.
func TestEncodedSecretsAreRedacted(t *testing.T) {
	d := newDemoEnv(t, nil)
	const password = "pa55>>>w0rd???" // encodes differently in each base64 alphabet
	d.install(t, encodeProc)
	code, r := d.request(t, "bob", api.RunRequest{Procedure: "encode-test", Environment: "staging", Params: map[string]any{"password": password}})
	if code != 201 {
		t.Fatalf("%d %v", code, r)
	}
	id := r["id"].(string)
	if final := d.waitRun(t, d.tok["bob"], id); final["status"] != "succeeded" {
		t.Fatalf("run: %v\n%s", final, d.output(t, d.tok["bob"], id))
	}
	stored := d.output(t, d.tok["bob"], id)
	lines := strings.Split(strings.TrimRight(stored, "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("want 8 lines of output, got %q", stored)
	}
	b := []byte(password)
	for _, enc := range []string{base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b))} {
		if strings.Contains(stored, enc) {
			t.Errorf("the output holds the secret encoded as %s:\n%s", enc, stored)
		}
	}
	for i, line := range lines[:5] {
		if line != "[REDACTED]" {
			t.Errorf("line %d: %q, want [REDACTED]", i+1, line)
		}
	}
	// Inside a longer stream: only the characters that also encode the
	// neighbouring bytes are left.
	around := regexp.MustCompile(`^[A-Za-z0-9+/]{0,8}\[REDACTED\][A-Za-z0-9+/=]{0,12}$`)
	for i, line := range lines[5:] {
		if !around.MatchString(line) {
			t.Errorf("line %d: %q, want the secret's part redacted", i+6, line)
		}
	}
}
