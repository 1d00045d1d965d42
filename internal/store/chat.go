package store

import "time"

// ChatLink says that a chat user — ExternalID in workspace TeamID of
// Provider (slack) — is the Airlock user UserID. It is made only by the
// user, with a one-time code from their account page, and it is what
// lets a click in chat act as them.
type ChatLink struct {
	UserID     string
	Provider   string
	ExternalID string
	TeamID     string
	CreatedAt  time.Time
}

// ChatLinkCode is a one-time code that links the chat user who types it
// to UserID, until ExpiresAt. Only its hash is stored.
type ChatLinkCode struct {
	Hash      []byte
	UserID    string
	ExpiresAt time.Time
}
