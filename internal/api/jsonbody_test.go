package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLoneSurrogate(t *testing.T) {
	for _, c := range []struct {
		body string
		bad  string // the escape named in the error; empty: accepted
	}{
		{`{"a":"plain"}`, ""},
		{`{"a":"\ud83d\ude00"}`, ""},                      // a pair: U+1F600
		{`{"a":"\uD83D\uDE00"}`, ""},                      // upper-case hex
		{`{"a":"\u00e9\u20ac"}`, ""},                      // not surrogates
		{`{"a":"\\ud800"}`, ""},                           // an escaped backslash, then text
		{`{"a":"\\\\ud800"}`, ""},                         // two escaped backslashes, then text
		{`{"\\":"ud800"}`, ""},                            // the backslash ends at the quote
		{`{"a":"\"\ud800"}`, `\ud800`},                    // an escaped quote does not end the string
		{`{"a":"\ud800"}`, `\ud800`},                      // high alone
		{`{"a":"\udfff"}`, `\udfff`},                      // low alone
		{`{"a":"\udc00\ud800"}`, `\udc00`},                // pair in the wrong order
		{`{"a":"\ud800x"}`, `\ud800`},                     // high, then text
		{`{"a":"\ud800\u0041"}`, `\ud800`},                // high, then a non-surrogate escape
		{`{"a":"\ud800\ud800"}`, `\ud800`},                // high, then high
		{`{"a":"\ud800\n"}`, `\ud800`},                    // high, then another escape
		{`{"a":"\ud800`, `\ud800`},                        // high at the end of the body
		{`{"a":"\\\ud800"}`, `\ud800`},                    // an escaped backslash, then an escape
		{`{"\ud800":1}`, `\ud800`},                        // in a key
		{`{"a":["x","\udbff","\udbff\udfff"]}`, `\udbff`}, // the second string, not the pair after it
		{`{"a":"\ud8"}`, ""},                              // malformed: left to the decoder
		{`{"a":"\`, ""},                                   // truncated: left to the decoder
		{`{"a":"é\ud800"}`, `\ud800`},                     // after multi-byte UTF-8
	} {
		err := loneSurrogate([]byte(c.body))
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%s: %v", c.body, err)
		case c.bad != "" && err == nil:
			t.Errorf("%s: accepted", c.body)
		case c.bad != "" && !strings.Contains(err.Error(), c.bad+" at byte "+strconv.Itoa(strings.Index(c.body, c.bad))):
			t.Errorf("%s: %v (want %s named at byte %d)", c.body, err, c.bad, strings.Index(c.body, c.bad))
		}
	}
}

// FuzzLoneSurrogate: whatever the body, the scanner does not panic, and a
// body it accepts that encoding/json decodes keeps every character as
// sent: a lone surrogate would have become U+FFFD.
func FuzzLoneSurrogate(f *testing.F) {
	for _, s := range []string{`{"a":"\ud800"}`, `{"a":"\\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\`, `"\u`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		// readJSON refuses invalid UTF-8 before it looks for surrogates.
		if !utf8.ValidString(body) || loneSurrogate([]byte(body)) != nil || strings.Contains(body, "\uFFFD") || strings.Contains(body, `\ufffd`) || strings.Contains(body, `\uFFFD`) {
			return
		}
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return
		}
		if strings.Contains(fmt.Sprint(v), "\uFFFD") {
			t.Fatalf("%q decoded with U+FFFD", body)
		}
	})
}
