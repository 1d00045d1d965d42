package procedure

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/airlockhq/airlock/internal/strictyaml"
)

// LoadPaths reads every procedure from the given files and directories
// (recursively, *.yaml and *.yml, in lexical order). It returns the valid
// procedures and an error listing every problem found, including a name
// defined twice.
func LoadPaths(paths []string) ([]*Source, error) {
	var files []string
	var errs strictyaml.Errors
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &strictyaml.Error{File: p, Msg: err.Error()})
			continue
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != p {
				return filepath.SkipDir
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, &strictyaml.Error{File: p, Msg: err.Error()})
		}
		if len(found) == 0 && err == nil {
			errs = append(errs, &strictyaml.Error{File: p, Msg: "no .yaml or .yml files in this directory"})
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	var out []*Source
	seen := map[string]*Source{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, &strictyaml.Error{File: f, Msg: err.Error()})
			continue
		}
		srcs, err := Parse(f, data)
		if es, ok := err.(strictyaml.Errors); ok {
			errs = append(errs, es...)
		}
		for _, s := range srcs {
			if first, dup := seen[s.Procedure.Name]; dup {
				errs = append(errs, &strictyaml.Error{File: s.File, Line: s.Line, Column: 1, Path: "name",
					Msg: fmt.Sprintf("procedure %q is already defined at %s:%d", s.Procedure.Name, first.File, first.Line)})
				continue
			}
			seen[s.Procedure.Name] = s
			out = append(out, s)
		}
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}
