package procedure_test

import (
	"testing"

	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/strictyaml"
)

// A file that defines nothing is an error at line 1, not a file that
// validates by defining no procedure.
func TestEmptyFileIsAnError(t *testing.T) {
	for _, src := range []string{"", "\n", "   \n \n", "# only a comment\n", "---\n", "---\n---\n", "# c\n---\n# d\n...\n"} {
		srcs, err := procedure.Parse("p.yaml", []byte(src))
		es, ok := err.(strictyaml.Errors)
		if !ok || len(es) != 1 || len(srcs) != 0 {
			t.Errorf("%q: %d procedures, error %v", src, len(srcs), err)
			continue
		}
		if got := es[0].Error(); got != "p.yaml:1:1: the file is empty: expected a procedure" {
			t.Errorf("%q: %s", src, got)
		}
	}
	// A syntax error is reported as such, not as an empty file.
	if _, err := procedure.Parse("p.yaml", []byte("a: [\n")); err == nil || len(err.(strictyaml.Errors)) != 1 {
		t.Errorf("syntax error: %v", err)
	}
}
