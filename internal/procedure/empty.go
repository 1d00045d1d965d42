package procedure

import (
	"errors"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/internal/strictyaml"
)

// emptyFile returns an error when data holds no procedure at all: nothing,
// whitespace, comments, or only empty documents (--- and ...). Such a file
// would otherwise validate by defining nothing. A file with a syntax error
// is left to Parse, which reports it with its line.
func emptyFile(file string, data []byte) error {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil
		}
		for _, n := range doc.Content {
			if n.Kind != yaml.ScalarNode || n.Tag != "!!null" || n.Value != "" {
				return nil
			}
		}
	}
	return strictyaml.Errors{{File: file, Line: 1, Column: 1, Msg: "the file is empty: expected a procedure"}}
}
