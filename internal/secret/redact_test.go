package secret

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// redact runs text through a Redactor in writes of n bytes.
func redact(text string, n int, values ...string) string {
	var out bytes.Buffer
	var vs [][]byte
	for _, v := range values {
		vs = append(vs, []byte(v))
	}
	r := NewRedactor(&out, vs)
	for rest := text; rest != ""; {
		k := min(n, len(rest))
		r.Write([]byte(rest[:k]))
		rest = rest[k:]
	}
	r.Flush()
	return out.String()
}

// The encodings a secret commonly shows up in are masked like the value,
// also when split across writes. The expected encodings are written out
// (from coreutils base64, basenc and od), not computed by the code under
// test.
func TestRedactorMasksEncodings(t *testing.T) {
	const pw = "pa55>>>w0rd???" // ">>>" and "???" differ between the base64 alphabets
	for _, enc := range []string{
		"cGE1NT4+PncwcmQ/Pz8=",         // base64
		"cGE1NT4+PncwcmQ/Pz8",          // base64, padding dropped
		"cGE1NT4-PncwcmQ_Pz8=",         // basenc --base64url
		"cGE1NT4-PncwcmQ_Pz8",          // base64url, no padding (JWT-style)
		"706135353e3e3e773072643f3f3f", // od -An -tx1, xxd -p
		"706135353E3E3E773072643F3F3F", // basenc --base16
	} {
		text := "before " + enc + " after\n"
		for n := 1; n <= len(text); n++ {
			if got := redact(text, n, pw); got != "before "+Mask+" after\n" {
				t.Fatalf("%s in writes of %d bytes: %q", enc, n, got)
			}
		}
	}
	// A 4-byte secret has encodings no shorter than the value.
	if got := redact("x a2V5IQ== 6b657921 y", 3, "key!"); got != "x "+Mask+" "+Mask+" y" {
		t.Errorf("short secret: %q", got)
	}
	// Not caught, as documented: mixed-case hex, an encoding broken by a
	// line break.
	for _, text := range []string{"706135353e3e3e773072643F3F3F", "cGE1NT4+Pnc\nwcmQ/Pz8="} {
		if got := redact(text, 1, pw); got != text {
			t.Errorf("%q: %q", text, got)
		}
	}
}

// Inside a longer base64 stream the secret's encoding depends on its
// offset modulo 3, and the characters at its edges share bits with its
// neighbours: every character that encodes only the secret is masked,
// whatever comes before and after.
func TestRedactorMasksSecretInsideBase64Stream(t *testing.T) {
	const pw = "pa55>>>w0rd???"
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
		for _, before := range []string{"", "u", "us", "user:", "password=\x00\xff"} {
			for _, after := range []string{"", "\n", "\n2", "\nmore text"} {
				text := enc.EncodeToString([]byte(before + pw + after))
				got := redact(text, 5, pw)
				if strings.Count(got, Mask) != 1 {
					t.Fatalf("%q+secret+%q encoded %q: %q", before, after, text, got)
				}
				// What is left encodes the neighbours, and at most a
				// character each side that shares bits with the secret.
				left, right, _ := strings.Cut(got, Mask)
				if len(left) > (len(before)*4+2)/3 || len(right) > (len(after)*4+2)/3+3 {
					t.Errorf("%q+secret+%q encoded %q: too much left around the mask: %q", before, after, text, got)
				}
			}
		}
	}
}

// Redactors sharing one prepared set keep their held-back tails apart: a
// value split across writes on two interleaved streams is masked on
// each, and one stream's tail never completes a match on the other.
func TestRedactorsShareValues(t *testing.T) {
	vs := NewValues([][]byte{[]byte("hunter22")})
	var a, b bytes.Buffer
	ra, rb := vs.Writer(&a), vs.Writer(&b)
	for _, w := range []struct {
		r *Redactor
		s string
	}{{ra, "x hun"}, {rb, "y hunt"}, {ra, "ter22 x"}, {rb, "er2"}, {rb, "2 y"}, {ra, " hun"}, {rb, "ter22"}} {
		w.r.Write([]byte(w.s))
	}
	ra.Flush()
	rb.Flush()
	if got, want := a.String(), "x "+Mask+" x hun"; got != want {
		t.Errorf("first stream: got %q, want %q", got, want)
	}
	if got, want := b.String(), "y "+Mask+" y"+"ter22"; got != want {
		t.Errorf("second stream: got %q, want %q", got, want)
	}
	if got, want := vs.String("hunter22 and aHVudGVyMjI="), Mask+" and "+Mask; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
}
