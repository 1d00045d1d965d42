package store

import "time"

// LoginFailureStats are the failed logins recorded since a time that the
// throttle weighs: those on one account from one source (the pair), those
// from the source on any account, and those on the account from any
// source, each with the time of the latest.
type LoginFailureStats struct {
	Pair, Source, Account             int
	PairLast, SourceLast, AccountLast time.Time
}
