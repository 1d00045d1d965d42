// Package testenv decides what integration tests do when a real component
// (PostgreSQL, sshd, Chromium) is absent: skip with the reason, or, under
// AIRLOCK_TEST_STRICT=1 (CI), fail, so that a suite cannot pass by running
// nothing. Test code only.
package testenv

import (
	"os"
	"testing"
)

// Strict reports whether absent components are failures.
func Strict() bool { return os.Getenv("AIRLOCK_TEST_STRICT") == "1" }

// Missing skips the test with reason, or fails it in strict mode.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("AIRLOCK_TEST_STRICT=1 and %s", reason)
	}
	t.Skip(reason)
}

// PostgresURL returns AIRLOCK_TEST_POSTGRES_URL, or skips (fails when
// strict) when it is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("AIRLOCK_TEST_POSTGRES_URL")
	if u == "" {
		Missing(t, "AIRLOCK_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL tests")
	}
	return u
}
