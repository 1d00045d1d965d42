package testenv

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, and fails the test naming what
// it waited for when it has not within a minute: a wait with a deadline
// that says what it waited for, never a bare sleep.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, time.Minute, what, cond)
}

// Within is Eventually with another deadline: for a guarantee that is
// itself a bound ("final within the heartbeat timeout and 10 s").
func Within(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("waited %v for %s", limit, what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
