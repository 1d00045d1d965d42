package strictyaml_test

import (
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/strictyaml"
)

type inner struct {
	Driver string `yaml:"driver"`
	Max    int    `yaml:"max"`
}

type doc struct {
	Name    string            `yaml:"name"`
	On      bool              `yaml:"on"`
	Timeout time.Duration     `yaml:"timeout"`
	DB      inner             `yaml:"db"`
	Tags    []string          `yaml:"tags"`
	Map     map[string]string `yaml:"map"`
}

func TestDecodeOK(t *testing.T) {
	var d doc
	err := strictyaml.Decode("a.yaml", []byte("name: x\non: true\ntimeout: 90s\ndb: {driver: sqlite, max: 3}\ntags: [a, b]\nmap: {k: v}\n"), &d)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "x" || !d.On || d.Timeout != 90*time.Second || d.DB.Max != 3 || len(d.Tags) != 2 || d.Map["k"] != "v" {
		t.Fatalf("%+v", d)
	}
}

func TestDecodeCollectsAllErrors(t *testing.T) {
	src := `name: x
bogus: 1
on: "yes"
timeout: soon
db:
  driver: [a]
  max: many
  extra: 1
name: y
`
	var d doc
	err := strictyaml.Decode("c.yaml", []byte(src), &d)
	want := []string{
		`c.yaml:2:1: bogus: unknown field (known: name, on, timeout, db, tags, map)`,
		`c.yaml:3:5: on: expected true or false, got "yes"`,
		`c.yaml:4:10: timeout: expected a duration such as 30s, 15m or 12h, got "soon"`,
		`c.yaml:6:11: db.driver: expected a string, got a list`,
		`c.yaml:7:8: db.max: expected an integer, got "many"`,
		`c.yaml:8:3: db.extra: unknown field (known: driver, max)`,
		`c.yaml:9:1: name: duplicate key (first at line 1)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	var d doc
	err := strictyaml.Decode("s.yaml", []byte("name: x\n  bad: [\n"), &d)
	if err == nil || !strings.HasPrefix(err.Error(), "s.yaml:") {
		t.Fatalf("syntax error without position: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("name: x\ndb: {driver: a}\n"))
	f.Add([]byte("tags: [1, 2]\nmap: {a: *b}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		_ = strictyaml.Decode("f.yaml", data, &d)
	})
}
