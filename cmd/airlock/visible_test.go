package main

import "testing"

// TestOutputCannotDriveTheTerminal: a step's ESC, CR, BEL and C1 bytes
// reach the terminal as visible escapes unless --raw asks for them.
func TestOutputCannotDriveTheTerminal(t *testing.T) {
	in := "ok\x1b]0;owned\x07 \x1b[2J\rover\u009b\tend\n"
	want := `ok\x1b]0;owned\x07 \x1b[2J\rover\x9b` + "\tend\n"
	if got := (&app{}).visible(in); got != want {
		t.Fatalf("visible(%q) = %q, want %q", in, got, want)
	}
	if got := (&app{rawOutput: true}).visible(in); got != in {
		t.Fatalf("--raw changed the output: %q", got)
	}
}
