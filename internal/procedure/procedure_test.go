package procedure_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/strictyaml"
)

// TestBadCorpus checks that every file under testdata/bad yields exactly
// the errors its "# want:" lines list, with line and column.
func TestBadCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 8 {
		t.Fatalf("only %d bad files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					want = append(want, f+":"+w)
				}
			}
			srcs, err := procedure.Parse(f, data)
			if err == nil {
				t.Fatalf("no error; parsed %d procedures", len(srcs))
			}
			var got []string
			for _, e := range err.(strictyaml.Errors) {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestGoodFileAndDigest(t *testing.T) {
	srcs, err := procedure.LoadPaths([]string{"testdata/good"})
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 || srcs[0].Procedure.Name != "restart-api" || srcs[1].Procedure.Name != "flush-cache" {
		t.Fatalf("loaded %d", len(srcs))
	}
	same, err := procedure.LoadPaths([]string{"testdata/same/restart-api.yml"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := srcs[0].Procedure, same[0].Procedure
	if a.Digest() != b.Digest() {
		t.Fatalf("same definition written differently has another digest:\n%s\n%s", a.Canonical(), b.Canonical())
	}
	if !strings.HasPrefix(a.Digest(), "sha256:") || len(a.Digest()) != 71 {
		t.Fatalf("digest %q", a.Digest())
	}
	// Any semantic change changes the digest.
	c := *a
	c.Steps = append([]procedure.Step(nil), a.Steps...)
	c.Steps[0].Exec = []string{"lbctl", "drain", "--force", "--host", "{{ .node.name }}"}
	if c.Digest() == a.Digest() {
		t.Fatal("changed exec kept the digest")
	}
	// The canonical form round-trips.
	back, err := procedure.FromCanonical(a.Canonical())
	if err != nil || back.Digest() != a.Digest() {
		t.Fatalf("round trip: %v, %s vs %s", err, back.Digest(), a.Digest())
	}
	if !strings.Contains(a.YAML(), "timeout: 10m0s") || !strings.HasPrefix(a.YAML(), "apiVersion: airlock/v1\nkind: Procedure\nname: restart-api\n") {
		t.Fatalf("canonical YAML:\n%s", a.YAML())
	}
}

func TestDuplicateNamesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	body := "apiVersion: airlock/v1\nkind: Procedure\nname: x\nowner: t\nrisk: low\nsteps: [{name: s, exec: [true]}]\n"
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(body), 0o600)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(body), 0o600)
	_, err := procedure.LoadPaths([]string{dir})
	if err == nil || !strings.Contains(err.Error(), `b.yaml:1:1: name: procedure "x" is already defined at `) {
		t.Fatalf("duplicate names: %v", err)
	}
}

func TestCoerce(t *testing.T) {
	min, max := int64(1), int64(10)
	ml := 2
	cases := []struct {
		p       procedure.Parameter
		in      any
		want    any
		wantErr string
	}{
		{procedure.Parameter{Type: "int", Min: &min, Max: &max}, "5", int64(5), ""},
		{procedure.Parameter{Type: "int", Min: &min, Max: &max}, float64(11), nil, "must be at most 10"},
		{procedure.Parameter{Type: "int"}, "5; rm -rf /", nil, `expected an integer, got "5; rm -rf /"`},
		{procedure.Parameter{Type: "int"}, 1.5, nil, "expected an integer"},
		{procedure.Parameter{Type: "string", Pattern: "[A-Z]+-[0-9]+"}, "OPS-1", "OPS-1", ""},
		{procedure.Parameter{Type: "string", Pattern: "[A-Z]+-[0-9]+"}, "OPS-1; rm -rf /", nil, "must match"},
		{procedure.Parameter{Type: "string", Pattern: "[a-z]+"}, "$(id)", nil, "must match"},
		{procedure.Parameter{Type: "string"}, "a\x00b", nil, "NUL"},
		{procedure.Parameter{Type: "enum", Values: []string{"a", "b"}}, "`id`", nil, "expected one of a, b"},
		{procedure.Parameter{Type: "bool"}, "yes", nil, "expected true or false"},
		{procedure.Parameter{Type: "bool"}, true, true, ""},
		{procedure.Parameter{Type: "multi-enum", Values: []string{"a", "b", "c"}, MaxLength: &ml}, []any{"a", "c"}, []string{"a", "c"}, ""},
		{procedure.Parameter{Type: "multi-enum", Values: []string{"a", "b", "c"}, MaxLength: &ml}, "a,b,c", nil, "choose at most 2"},
		{procedure.Parameter{Type: "secret", Pattern: "[a-z]{8,}"}, "short", nil, "does not match the required pattern"},
	}
	for _, c := range cases {
		got, err := c.p.Coerce(c.in)
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s %v: err %v, want %q", c.p.Type, c.in, err, c.wantErr)
			}
			if strings.Contains(c.wantErr, "required pattern") && strings.Contains(err.Error(), "short") {
				t.Errorf("secret value echoed in error: %v", err)
			}
		case err != nil:
			t.Errorf("%s %v: %v", c.p.Type, c.in, err)
		case fmt.Sprint(got) != fmt.Sprint(c.want):
			t.Errorf("%s %v = %v, want %v", c.p.Type, c.in, got, c.want)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := procedure.Vars{Params: map[string]string{"service": "api; rm -rf /"}, Node: map[string]string{"name": "web-1"}, Environment: "staging"}
	got, err := procedure.Expand("restart-{{ .params.service }}@{{.node.name}}/{{ .environment }}", vars)
	if err != nil || got != "restart-api; rm -rf /@web-1/staging" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := procedure.Expand("{{ .params.missing }}", vars); err == nil {
		t.Fatal("missing reference expanded")
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/same", "testdata/bad"} {
		files, _ := filepath.Glob(dir + "/*")
		for _, file := range files {
			b, _ := os.ReadFile(file)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		srcs, _ := procedure.Parse("fuzz.yaml", data)
		for _, s := range srcs {
			// Whatever parses must canonicalize and reparse to the same digest.
			p, err := procedure.FromCanonical(s.Procedure.Canonical())
			if err != nil || p.Digest() != s.Procedure.Digest() {
				t.Fatalf("canonical round trip: %v", err)
			}
			// The canonical YAML (what `airlock propose` sends) parses
			// back to the same digest.
			again, err := procedure.Parse("canonical.yaml", []byte(s.Procedure.YAML()))
			if err != nil || len(again) != 1 || again[0].Procedure.Digest() != s.Procedure.Digest() {
				t.Fatalf("canonical YAML round trip: %v\n%s", err, s.Procedure.YAML())
			}
		}
	})
}
