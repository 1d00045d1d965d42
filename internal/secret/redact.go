package secret

import (
	"bytes"
	"io"
	"sort"
)

// Mask replaces every occurrence of a secret in output.
const Mask = "[REDACTED]"

// minSecretLen: values shorter than this are not redacted (a one-letter
// "secret" would mask half the output); Validate refuses them for
// secrets, and they are rare as secret parameters.
const minSecretLen = 4

// Redactor writes to W with every occurrence of any of its values
// replaced by Mask. It keeps back the last len(longest)-1 bytes of each
// write until it knows they do not start a value, so a value split across
// writes (or output chunks) is still caught. Call Flush at the end.
type Redactor struct {
	W       io.Writer
	values  [][]byte
	longest int
	pending []byte
}

// NewRedactor redacts the given values from what is written to w.
func NewRedactor(w io.Writer, values [][]byte) *Redactor {
	r := &Redactor{W: w}
	for _, v := range values {
		if len(v) >= minSecretLen {
			r.values = append(r.values, bytes.Clone(v))
			r.longest = max(r.longest, len(v))
		}
	}
	// Longest first, so a value that contains another is masked whole.
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	return r
}

// Write implements io.Writer. It reports len(p) consumed.
func (r *Redactor) Write(p []byte) (int, error) {
	if len(r.values) == 0 {
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
		if !final && len(buf)-i < r.longest && r.couldStart(buf[i:]) {
			return b.Bytes(), buf[i:]
		}
		matched := false
		for _, v := range r.values {
			if bytes.HasPrefix(buf[i:], v) {
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
	for _, v := range r.values {
		if len(tail) < len(v) && bytes.HasPrefix(v, tail) {
			return true
		}
	}
	return false
}

// RedactString masks the values in s, for one-shot strings (error
// messages, exit reasons).
func RedactString(s string, values [][]byte) string {
	var b bytes.Buffer
	r := NewRedactor(&b, values)
	_, _ = r.Write([]byte(s))
	_ = r.Flush()
	return b.String()
}
