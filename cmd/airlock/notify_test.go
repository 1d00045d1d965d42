package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNotifyFromTheCLI: an admin sends a test message through a webhook,
// lists deliveries and retries a dead letter; a non-admin may not.
func TestNotifyFromTheCLI(t *testing.T) {
	h := newHookCounter(t, false)
	as := inProcessWith(t, h.configFile(t))
	root1, alice := as("root1"), as("alice")
	if code, out, stderr := root1.run("notify", "test", "webhook:ci"); code != 0 || !strings.Contains(out, "on its way through webhook:ci") {
		t.Fatalf("notify test: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := root1.run("notify", "test", "webhook:nope"); code != 1 || !strings.Contains(stderr, "channel") {
		t.Fatalf("an unknown channel: %d %s", code, stderr)
	}
	if code, _, _ := alice.run("notify", "test", "webhook:ci"); code != 1 {
		t.Fatalf("alice sends a test: %d", code)
	}
	waitFor(t, 30*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.kinds["test webhook:ci"] == 0 {
			return errors.New("the test message at the receiver")
		}
		return nil
	})
	// The receiver has the message before the dispatcher, answered,
	// records its delivery.
	waitFor(t, 30*time.Second, func() error {
		if code, out, stderr := root1.run("notify", "deliveries", "--status", "delivered"); code != 0 || !strings.Contains(out, "webhook:ci") || !strings.Contains(out, "delivered") {
			return fmt.Errorf("the delivery recorded as delivered: %d %s %s", code, out, stderr)
		}
		return nil
	})
	if code, _, stderr := root1.run("notify", "retry", "ntf_nothing"); code != 1 || !strings.Contains(stderr, "not") {
		t.Fatalf("retry of nothing: %d %s", code, stderr)
	}
}
