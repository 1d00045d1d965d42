package identity

import (
	"errors"
	"testing"
)

// TestArgonWorkIsBounded: with every slot taken and the queue full, a
// sign-in is refused at once with ErrBusy (a 503), not queued: the
// argon2id work in flight, and so its memory, stays bounded.
func TestArgonWorkIsBounded(t *testing.T) {
	hash := HashPassword("correct horse battery")
	for range cap(argonSlots) {
		argonSlots <- struct{}{}
	}
	argonWaiting.Add(argonQueueMax)
	_, err := VerifyPassword(hash, "correct horse battery")
	argonWaiting.Add(-argonQueueMax)
	for range cap(argonSlots) {
		<-argonSlots
	}
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("a sign-in past the queue: %v, want ErrBusy", err)
	}
	if ok, err := VerifyPassword(hash, "correct horse battery"); !ok || err != nil {
		t.Fatalf("with slots free again: %v %v", ok, err)
	}
}
