package trigger

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/procedure"
)

var now = time.Date(2031, 3, 3, 12, 0, 0, 0, time.UTC)

func signed(t *testing.T, secret string, at time.Time, body string) Delivery {
	t.Helper()
	sig, err := Sign(secret, "msg_1", at.Unix(), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return Delivery{ID: "msg_1", Timestamp: strconv.FormatInt(at.Unix(), 10), Signature: sig, Body: []byte(body)}
}

// TestVerifyHMAC: what svix signs verifies, and every change to it —
// body, id, timestamp, secret, a stale or future timestamp, a missing
// header, a signature of another version — does not.
func TestVerifyHMAC(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewSecret()
	body := `{"alerts":[]}`
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := wh.Sign("msg_1", now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	good := signed(t, secret, now, body)
	if good.Signature != ref {
		t.Fatalf("our signature %q, svix's %q", good.Signature, ref)
	}
	if err := VerifyHMAC(secret, good, now); err != nil {
		t.Fatalf("good delivery: %v", err)
	}
	rotating := good
	rotating.Signature = "v1,AAAA " + good.Signature
	if err := VerifyHMAC(secret, rotating, now); err != nil {
		t.Fatalf("one of several signatures matches: %v", err)
	}
	cases := map[string]struct {
		d      func(Delivery) Delivery
		at     time.Time
		reason string
	}{
		"body changed":       {func(d Delivery) Delivery { d.Body = []byte(`{"alerts":[1]}`); return d }, now, "bad_signature"},
		"id changed":         {func(d Delivery) Delivery { d.ID = "msg_2"; return d }, now, "bad_signature"},
		"timestamp changed":  {func(d Delivery) Delivery { d.Timestamp = strconv.FormatInt(now.Unix()+1, 10); return d }, now, "bad_signature"},
		"other secret":       {func(Delivery) Delivery { return signed(t, other, now, body) }, now, "bad_signature"},
		"stale":              {func(d Delivery) Delivery { return d }, now.Add(Tolerance + time.Second), "stale_timestamp"},
		"future":             {func(d Delivery) Delivery { return d }, now.Add(-Tolerance - time.Second), "stale_timestamp"},
		"no signature":       {func(d Delivery) Delivery { d.Signature = ""; return d }, now, "missing_headers"},
		"no id":              {func(d Delivery) Delivery { d.ID = ""; return d }, now, "missing_headers"},
		"v2 signature":       {func(d Delivery) Delivery { d.Signature = "v2" + d.Signature[2:]; return d }, now, "bad_signature"},
		"not base64":         {func(d Delivery) Delivery { d.Signature = "v1,!!!"; return d }, now, "bad_signature"},
		"timestamp not unix": {func(d Delivery) Delivery { d.Timestamp = "yesterday"; return d }, now, "bad_timestamp"},
		"huge id":            {func(d Delivery) Delivery { d.ID = strings.Repeat("x", 1000); return d }, now, "bad_headers"},
	}
	for name, c := range cases {
		err := VerifyHMAC(secret, c.d(good), c.at)
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Reason != c.reason {
			t.Errorf("%s: %v, want %s", name, err, c.reason)
		}
	}
}

func TestVerifyBearer(t *testing.T) {
	secret, _ := NewSecret()
	if err := VerifyBearer(secret, Delivery{Authorization: "Bearer " + secret}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"", "Bearer ", "Bearer " + secret + "x", "bearer " + secret, secret, "Basic " + secret} {
		if err := VerifyBearer(secret, Delivery{Authorization: h}); err == nil {
			t.Errorf("Authorization %q accepted", h)
		}
	}
}

// TestPresets: each preset splits a payload into items with their dedup
// keys, ignoring what it should.
func TestPresets(t *testing.T) {
	am := `{"version":"4","status":"firing","alerts":[
		{"status":"firing","fingerprint":"a1","startsAt":"2031-03-03T11:00:00Z","labels":{"service":"api"}},
		{"status":"resolved","fingerprint":"b2","startsAt":"2031-03-03T10:00:00Z","labels":{"service":"worker"}}]}`
	pdTriggered := `{"event":{"id":"01","event_type":"incident.triggered","data":{"id":"PGR0VU2","title":"api down","service":{"summary":"api"}}}}`
	pdResolved := strings.Replace(pdTriggered, "incident.triggered", "incident.resolved", 1)
	pdAck := strings.Replace(pdTriggered, "incident.triggered", "incident.acknowledged", 1)
	type want struct{ key, ignore string }
	cases := []struct {
		name string
		spec Spec
		body string
		id   string
		want []want
	}{
		{"alertmanager", Spec{Preset: PresetAlertmanager}, am, "", []want{{"a1:2031-03-03T11:00:00Z", ""}, {"b2:2031-03-03T10:00:00Z:resolved", "resolved"}}},
		{"alertmanager on_resolved run", Spec{Preset: PresetAlertmanager, OnResolved: ResolvedRun}, am, "", []want{{"a1:2031-03-03T11:00:00Z", ""}, {"b2:2031-03-03T10:00:00Z:resolved", ""}}},
		{"pagerduty triggered", Spec{Preset: PresetPagerDuty}, pdTriggered, "", []want{{"PGR0VU2", ""}}},
		{"pagerduty resolved", Spec{Preset: PresetPagerDuty}, pdResolved, "", []want{{"PGR0VU2:resolved", "resolved"}}},
		{"pagerduty resolved run", Spec{Preset: PresetPagerDuty, OnResolved: ResolvedRun}, pdResolved, "", []want{{"PGR0VU2:resolved", ""}}},
		{"pagerduty acknowledged", Spec{Preset: PresetPagerDuty, OnResolved: ResolvedRun}, pdAck, "", []want{{"PGR0VU2:incident.acknowledged", "event type incident.acknowledged"}}},
		{"generic webhook-id", Spec{Preset: PresetGeneric}, `{"x":1}`, "msg_9", []want{{"msg_9", ""}}},
		{"generic dedup_key", Spec{Preset: PresetGeneric, DedupKey: "$.build.number"}, `{"build":{"number":42}}`, "msg_9", []want{{"42", ""}}},
	}
	for _, c := range cases {
		body, err := decode([]byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		its, err := items(c.spec, body, c.id)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var got []want
		for _, it := range its {
			got = append(got, want{it.Key, it.Ignore})
		}
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) || (len(got) > 1 && got[1] != c.want[1]) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	for name, c := range map[string]struct {
		spec Spec
		body string
	}{
		"not alertmanager": {Spec{Preset: PresetAlertmanager}, `{"event":{}}`},
		"no fingerprint":   {Spec{Preset: PresetAlertmanager}, `{"alerts":[{"status":"firing","startsAt":"x"}]}`},
		"odd status":       {Spec{Preset: PresetAlertmanager}, `{"alerts":[{"status":"pending","fingerprint":"a","startsAt":"x"}]}`},
		"no incident id":   {Spec{Preset: PresetPagerDuty}, `{"event":{"event_type":"incident.triggered","data":{}}}`},
		"no dedup key":     {Spec{Preset: PresetGeneric}, `{"x":1}`},
		"dedup key object": {Spec{Preset: PresetGeneric, DedupKey: "$.x"}, `{"x":{"y":1}}`},
	} {
		body, _ := decode([]byte(c.body))
		if _, err := items(c.spec, body, ""); airlock.ErrorKind(err) != airlock.Invalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}

// TestMapping: each mapped JSONPath must select exactly one value, and
// the message names the JSONPath.
func TestMapping(t *testing.T) {
	spec := Spec{Preset: PresetAlertmanager, Mapping: map[string]string{"service": "$.labels.service", "tags": "$.labels.*"}}
	alert := map[string]any{"labels": map[string]any{"service": "api"}}
	got, err := params(spec, item{Object: alert})
	if err != nil || got["service"] != "api" || got["tags"] != "api" {
		t.Fatalf("params: %v %v", got, err)
	}
	alert["labels"].(map[string]any)["team"] = "payments"
	if _, err := params(spec, item{Index: 3, Object: alert}); err == nil || !strings.Contains(err.Error(), "alert 3: parameter tags: $.labels.* found 2 values") {
		t.Fatalf("two values: %v", err)
	}
	if _, err := params(spec, item{Object: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "$.labels.service found nothing") {
		t.Fatalf("nothing: %v", err)
	}
	if _, err := params(Spec{Mapping: map[string]string{"s": "$.labels"}}, item{Object: alert}); err == nil || !strings.Contains(err.Error(), "selects an object") {
		t.Fatalf("object: %v", err)
	}
}

func TestSpecNormalizeAndCheck(t *testing.T) {
	s := Spec{Mapping: map[string]string{"cache": "$.cache"}}
	if err := s.Normalize(); err != nil || s.Preset != PresetGeneric || s.Auth != AuthHMAC || s.OnResolved != ResolvedIgnore || s.RatePerMinute != DefaultRate {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	for name, bad := range map[string]Spec{
		"preset":         {Preset: "nagios"},
		"auth":           {Auth: "basic"},
		"on_resolved":    {OnResolved: "run"},
		"rate":           {RatePerMinute: MaxRate + 1},
		"mapping":        {Mapping: map[string]string{"x": "labels.service"}},
		"dedup_key":      {Preset: PresetAlertmanager, DedupKey: "$.x"},
		"mapping (long)": {Mapping: map[string]string{"x": "$." + strings.Repeat("a", maxPathLen)}},
	} {
		if err := bad.Normalize(); airlock.ErrorField(err) == "" || !strings.HasPrefix(airlock.ErrorField(err), name[:4]) {
			t.Errorf("%s: %v", name, err)
		}
	}
	def := &procedure.Procedure{Name: "p", Parameters: []procedure.Parameter{{Name: "cache", Type: procedure.TypeEnum, Required: true},
		{Name: "token", Type: procedure.TypeSecret}}}
	for _, m := range []map[string]string{{}, {"cache": "$.c", "nope": "$.n"}, {"cache": "$.c", "token": "$.t"}} {
		if err := (&Spec{Mapping: m}).check(def); err == nil {
			t.Errorf("mapping %v accepted", m)
		}
	}
	if err := (&Spec{Mapping: map[string]string{"cache": "$.c"}}).check(def); err != nil {
		t.Fatal(err)
	}
	// The binding covers the spec: any change is another binding.
	a := Binding("sha256:d", "staging", s, "usr_1")
	s2 := s
	s2.Mapping = map[string]string{"cache": "$.other"}
	if a == Binding("sha256:d", "staging", s2, "usr_1") || a == Binding("sha256:d", "staging", s, "usr_2") || a != Binding("sha256:d", "staging", s, "usr_1") {
		t.Fatal("binding does not follow the spec and account")
	}
}

func TestKeysAreBounded(t *testing.T) {
	long := strings.Repeat("k", 500)
	if k := idempotencyKey("trg_1", long); len(k) > 200 || !strings.HasPrefix(k, "trigger:trg_1:sha256:") {
		t.Fatalf("idempotency key %q", k)
	}
	if k := shortKey(long); len(k) > 200 {
		t.Fatalf("key %d long", len(k))
	}
	if idempotencyKey("trg_1", "fp:1") != "trigger:trg_1:fp:1" {
		t.Fatal("short keys are kept")
	}
}

// FuzzPayload: no payload makes the parser or the mapping panic, and
// an accepted one has a non-empty, bounded key per item.
func FuzzPayload(f *testing.F) {
	f.Add(`{"alerts":[{"status":"firing","fingerprint":"a","startsAt":"b","labels":{"service":"api"}}]}`, 0)
	f.Add(`{"event":{"event_type":"incident.triggered","data":{"id":"P1"}}}`, 1)
	f.Add(`{"x":[1,2,{"y":null}]}`, 2)
	presets := []string{PresetAlertmanager, PresetPagerDuty, PresetGeneric}
	f.Fuzz(func(t *testing.T, body string, preset int) {
		spec := Spec{Preset: presets[(preset%3+3)%3], DedupKey: "", Mapping: map[string]string{"service": "$..service"}}
		if spec.Preset == PresetGeneric {
			spec.DedupKey = "$.x[0]"
		}
		v, err := decode([]byte(body))
		if err != nil {
			return
		}
		its, err := items(spec, v, "")
		if err != nil {
			return
		}
		for _, it := range its {
			if it.Key == "" || len(shortKey(it.Key)) > 200 {
				t.Fatalf("key %q", it.Key)
			}
			_, _ = params(spec, it)
		}
		_, _ = json.Marshal(its)
	})
}
