package evidence

import (
	"time"

	"github.com/airlockhq/airlock"
)

// ParseTime reads RFC 3339 or a date; endOfDay moves a date to the next
// midnight.
func ParseTime(field, s string, endOfDay bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, airlock.FieldError(field, "expected RFC 3339 (2026-11-27T09:00:00Z) or a date (2026-11-27), got %q", s)
	}
	if endOfDay {
		t = t.Add(24 * time.Hour)
	}
	return t, nil
}
