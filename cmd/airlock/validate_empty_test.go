package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An empty procedure file fails validation, naming the file and line 1.
func TestValidateEmptyFile(t *testing.T) {
	loginProfiles(t, "", nil)
	f := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(f, []byte("# nothing yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errb := runCLI(t, "", "procedure", "validate", f)
	if code != 1 || !strings.Contains(out+errb, f+":1:1: the file is empty: expected a procedure") {
		t.Fatalf("validate an empty file: exit %d\n%s%s", code, out, errb)
	}
}
