package trigger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/theory/jsonpath"

	"github.com/airlockhq/airlock"
)

// MaxBody is the largest payload a trigger accepts.
const MaxBody = 1 << 20

// maxItems bounds the alerts of one delivery.
const maxItems = 1000

// item is one alert or event of a payload.
type item struct {
	// Index is the item's place in the payload (alerts[Index]).
	Index int
	// Object is what the mapping's JSONPaths are evaluated against.
	Object any
	// Key is the dedup key; Ignore says why the item starts nothing.
	Key    string
	Ignore string
}

// where names an item in messages.
func (it item) where(preset string) string {
	switch preset {
	case PresetAlertmanager:
		return fmt.Sprintf("alert %d: ", it.Index)
	case PresetPagerDuty:
		return "event: "
	}
	return ""
}

// decode reads a JSON payload: one value, nothing after it.
func decode(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, airlock.FieldError("body", "not JSON: %v", err)
	}
	if dec.More() {
		return nil, airlock.FieldError("body", "more than one JSON value")
	}
	return v, nil
}

// items splits a payload into what each may start.
func items(spec Spec, body any, webhookID string) ([]item, error) {
	switch spec.Preset {
	case PresetAlertmanager:
		return alertmanagerItems(spec, body)
	case PresetPagerDuty:
		return pagerdutyItems(spec, body)
	}
	it := item{Object: body}
	if spec.DedupKey != "" {
		v, err := selectOne(spec.DedupKey, body)
		if err != nil {
			return nil, airlock.FieldError("dedup_key", "%v", err)
		}
		if it.Key, err = scalar(v); err != nil {
			return nil, airlock.FieldError("dedup_key", "%s: %v", spec.DedupKey, err)
		}
	} else {
		it.Key = webhookID
	}
	if it.Key == "" {
		return nil, airlock.FieldError("dedup_key", "no dedup key: send a webhook-id header, or have the trigger's dedup_key select one")
	}
	return []item{it}, nil
}

func alertmanagerItems(spec Spec, body any) ([]item, error) {
	obj, _ := body.(map[string]any)
	alerts, ok := obj["alerts"].([]any)
	if !ok {
		return nil, airlock.FieldError("alerts", "not an Alertmanager webhook: $.alerts is not a list")
	}
	if len(alerts) > maxItems {
		return nil, airlock.FieldError("alerts", "at most %d alerts in one delivery", maxItems)
	}
	out := make([]item, 0, len(alerts))
	for i, a := range alerts {
		alert, ok := a.(map[string]any)
		if !ok {
			return nil, airlock.FieldError(fmt.Sprintf("alerts[%d]", i), "not an object")
		}
		fp, _ := alert["fingerprint"].(string)
		starts, _ := alert["startsAt"].(string)
		if fp == "" || starts == "" {
			return nil, airlock.FieldError(fmt.Sprintf("alerts[%d]", i), "an alert needs fingerprint and startsAt (its dedup key)")
		}
		it := item{Index: i, Object: alert, Key: fp + ":" + starts}
		switch status, _ := alert["status"].(string); status {
		case "firing":
		case "resolved":
			it.Key += ":resolved"
			if spec.OnResolved != ResolvedRun {
				it.Ignore = "resolved"
			}
		default:
			return nil, airlock.FieldError(fmt.Sprintf("alerts[%d].status", i), "expected firing or resolved, got %q", status)
		}
		out = append(out, it)
	}
	return out, nil
}

func pagerdutyItems(spec Spec, body any) ([]item, error) {
	obj, _ := body.(map[string]any)
	ev, ok := obj["event"].(map[string]any)
	if !ok {
		return nil, airlock.FieldError("event", "not a PagerDuty V3 webhook: $.event is not an object")
	}
	typ, _ := ev["event_type"].(string)
	data, _ := ev["data"].(map[string]any)
	id, _ := data["id"].(string)
	if id == "" {
		return nil, airlock.FieldError("event.data.id", "a PagerDuty event needs $.event.data.id (its dedup key)")
	}
	it := item{Object: ev, Key: id}
	switch typ {
	case "incident.triggered":
	case "incident.resolved":
		it.Key += ":resolved"
		if spec.OnResolved != ResolvedRun {
			it.Ignore = "resolved"
		}
	default:
		it.Key += ":" + typ
		it.Ignore = "event type " + typ
	}
	return []item{it}, nil
}

// params maps an item to raw parameter values.
func params(spec Spec, it item) (map[string]any, error) {
	out := map[string]any{}
	for _, name := range sortedKeys(spec.Mapping) {
		expr := spec.Mapping[name]
		v, err := selectOne(expr, it.Object)
		if err != nil {
			return nil, airlock.FieldError("mapping."+name, "%sparameter %s: %v", it.where(spec.Preset), name, err)
		}
		if _, obj := v.(map[string]any); obj {
			return nil, airlock.FieldError("mapping."+name, "%sparameter %s: %s selects an object, not a value", it.where(spec.Preset), name, expr)
		}
		out[name] = v
	}
	return out, nil
}

// selectOne returns the one value expr selects in v.
func selectOne(expr string, v any) (any, error) {
	p, err := jsonpath.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("%q is not a JSONPath: %v", expr, err)
	}
	got := p.Select(v)
	switch len(got) {
	case 0:
		return nil, fmt.Errorf("%s found nothing", expr)
	case 1:
		return got[0], nil
	}
	return nil, fmt.Errorf("%s found %d values, expected one", expr, len(got))
}

// scalar renders a dedup key's value.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("selects a %T, expected a string or number", v)
}

// shortKey bounds a key for storage and idempotency: one longer than
// 200 characters is replaced by its digest.
func shortKey(k string) string {
	if len(k) <= 200 {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// idempotencyKey is the run request's Idempotency-Key for an item: the
// same alert sent again names the same run.
func idempotencyKey(triggerID, key string) string {
	k := "trigger:" + triggerID + ":" + key
	if len(k) <= 200 {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return "trigger:" + triggerID + ":sha256:" + hex.EncodeToString(sum[:])
}
