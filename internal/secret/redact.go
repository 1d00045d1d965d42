package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io"
	"slices"
	"sort"
)

// Mask replaces every occurrence of a secret in output.
const Mask = "[REDACTED]"

// minSecretLen: values shorter than this are not redacted (a one-letter
// "secret" would mask half the output); Validate refuses them for
// secrets, and they are rare as secret parameters.
const minSecretLen = 4

// Values is a set of secret values, and their encodings, prepared for
// redaction once: a run redacts every stream of every node against the
// same set, and building it (a dozen encodings of each value) costs more
// than the redaction of a short output. It is read-only once built, so
// any number of Redactors may share it.
type Values struct {
	values  [][]byte
	first   [256][]int // indexes into values (longest first) by first byte
	longest int
}

// noValues is the empty set, shared: most runs have no secrets, and a
// Values is 6 KiB.
var noValues = &Values{}

// NewValues prepares values, and their encodings, for redaction.
func NewValues(values [][]byte) *Values {
	if !slices.ContainsFunc(values, func(v []byte) bool { return len(v) >= minSecretLen }) {
		return noValues
	}
	vs := &Values{}
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) < minSecretLen {
			continue
		}
		for _, e := range encodings(v) {
			if len(e) >= minSecretLen && !seen[string(e)] {
				seen[string(e)] = true
				vs.values = append(vs.values, e)
				vs.longest = max(vs.longest, len(e))
			}
		}
	}
	// Longest first, so a value that contains another (a padded encoding
	// its unpadded form) is masked whole.
	sort.SliceStable(vs.values, func(i, j int) bool { return len(vs.values[i]) > len(vs.values[j]) })
	for i, v := range vs.values {
		vs.first[v[0]] = append(vs.first[v[0]], i)
	}
	return vs
}

// Writer returns a Redactor of these values writing to w.
func (vs *Values) Writer(w io.Writer) *Redactor { return &Redactor{W: w, vs: vs} }

// Redactor writes to W with every occurrence of any of its values, or of
// a common encoding of one (see encodings), replaced by Mask. It keeps
// back the last len(longest)-1 bytes of each write until it knows they do
// not start a value, so a value split across writes (or output chunks) is
// still caught. Call Flush at the end.
type Redactor struct {
	W       io.Writer
	vs      *Values
	pending []byte
}

// NewRedactor redacts the given values, and their encodings, from what
// is written to w.
func NewRedactor(w io.Writer, values [][]byte) *Redactor { return NewValues(values).Writer(w) }

// encodings returns v and the forms of it that output commonly shows:
// base64 (standard and URL-safe alphabets, with and without padding), the
// part of each base64 alphabet's encoding that depends on v alone when v
// sits at any of the three byte offsets inside a longer base64-encoded
// stream (such as "user:"+v), and lower- and upper-case hex. Values
// transformed any other way (hex in mixed case, other encodings,
// compression, encryption, a value split by a line break or across
// stdout and stderr) are not among them.
func encodings(v []byte) [][]byte {
	out := [][]byte{bytes.Clone(v)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		out = append(out, []byte(enc.EncodeToString(v)))
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for off := range 3 {
			out = append(out, inBase64Stream(enc, v, off))
		}
	}
	h := hex.EncodeToString(v)
	return append(out, []byte(h), bytes.ToUpper([]byte(h)))
}

// inBase64Stream returns the characters of the base64 encoding of a
// stream holding v at byte offset off (mod 3) that depend on v alone:
// each character encodes 6 bits, and those that also hold bits of the
// bytes before or after v are cut off.
func inBase64Stream(enc *base64.Encoding, v []byte, off int) []byte {
	stream := make([]byte, off+len(v))
	copy(stream[off:], v)
	s := enc.EncodeToString(stream)
	start := (8*off + 5) / 6      // the first character with no bit before v
	end := 8 * (off + len(v)) / 6 // past the last character with no bit after v
	if start >= end {
		return nil
	}
	return []byte(s[start:end])
}

// Write implements io.Writer. It reports len(p) consumed.
func (r *Redactor) Write(p []byte) (int, error) {
	if len(r.vs.values) == 0 {
		_, err := r.W.Write(p)
		return len(p), err
	}
	buf := append(r.pending, p...)
	out, keep := r.scan(buf, false)
	r.pending = append(r.pending[:0:0], keep...)
	if len(out) > 0 {
		if _, err := r.W.Write(out); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush writes what is held back.
func (r *Redactor) Flush() error {
	out, _ := r.scan(r.pending, true)
	r.pending = nil
	if len(out) == 0 {
		return nil
	}
	_, err := r.W.Write(out)
	return err
}

// scan masks complete matches in buf and returns what can be emitted,
// and, unless final, the tail that might be the start of a match.
func (r *Redactor) scan(buf []byte, final bool) (out, keep []byte) {
	var b bytes.Buffer
	i := 0
	for i < len(buf) {
		// The rest may still grow into a (longer) value: wait for more.
		if !final && len(buf)-i < r.vs.longest && r.couldStart(buf[i:]) {
			return b.Bytes(), buf[i:]
		}
		matched := false
		for _, k := range r.vs.first[buf[i]] {
			if v := r.vs.values[k]; bytes.HasPrefix(buf[i:], v) {
				b.WriteString(Mask)
				i += len(v)
				matched = true
				break
			}
		}
		if matched {
			continue
		}
		b.WriteByte(buf[i])
		i++
	}
	return b.Bytes(), nil
}

// couldStart reports whether tail is a proper prefix of some value.
func (r *Redactor) couldStart(tail []byte) bool {
	for _, k := range r.vs.first[tail[0]] {
		if v := r.vs.values[k]; len(tail) < len(v) && bytes.HasPrefix(v, tail) {
			return true
		}
	}
	return false
}

// RedactString masks the values in s, for one-shot strings (error
// messages, exit reasons).
func RedactString(s string, values [][]byte) string { return NewValues(values).String(s) }

// String masks the values in s.
func (vs *Values) String(s string) string {
	var b bytes.Buffer
	r := vs.Writer(&b)
	_, _ = r.Write([]byte(s))
	_ = r.Flush()
	return b.String()
}
