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

// LoginReport counts the failed and throttled sign-ins from one source
// address in one window that were not audited one by one: the first of
// the window was, the rest are recorded by one summary event when the
// window closes.
type LoginReport struct {
	Addr        string
	WindowStart time.Time
	// Failed and Throttled count the attempts; FirstAt and LastAt date
	// the first and last of them.
	Failed, Throttled int
	FirstAt, LastAt   time.Time
	// Usernames are the distinct names tried, at most MaxReportNames;
	// MoreNames says that others were tried too.
	Usernames []string
	MoreNames bool
}

// MaxReportNames bounds the usernames a LoginReport lists.
const MaxReportNames = 10

// LoginTally is one failed or throttled sign-in to count in its source's
// open report.
type LoginTally struct {
	Addr, Username string
	At             time.Time
	// OpenSince: a report whose window started after it is open.
	OpenSince time.Time
	Throttled bool
	// Failure also records the attempt for the throttle (LoginFailureAdd,
	// with PruneBefore); a throttled attempt, or a refused single sign-on,
	// is not one.
	Failure     bool
	PruneBefore time.Time
}
