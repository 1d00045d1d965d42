package storetest

import (
	"testing"
	"time"
)

// testAnyDay runs the cases that compare times again with the base time
// a year before and a year after today: a case (or a driver) that mixes
// its fixed times with the wall clock fails one of them.
func testAnyDay(t *testing.T, h Harness) {
	today := time.Now().UTC().Truncate(time.Second)
	for _, at := range []struct {
		name string
		base time.Time
	}{{"YearBehind", today.AddDate(-1, 0, 0)}, {"YearAhead", today.AddDate(1, 0, 0)}} {
		base := at.base
		t.Run(at.name, func(t *testing.T) {
			t.Run("Tokens", func(t *testing.T) { testTokens(t, h, base) })
			t.Run("Sessions", func(t *testing.T) { testSessions(t, h, base) })
			t.Run("LoginFailures", func(t *testing.T) { testLoginFailures(t, h, base) })
			t.Run("LoginReports", func(t *testing.T) { testLoginReports(t, h, base) })
			t.Run("Chat", func(t *testing.T) { testChat(t, h, base) })
			t.Run("Runs", func(t *testing.T) { testRuns(t, h, base) })
			t.Run("RunClaimIsExclusive", func(t *testing.T) { testRunClaimExclusive(t, h, base) })
			t.Run("RunOutput", func(t *testing.T) { testRunOutput(t, h, base) })
		})
	}
}
