package sqlite

import (
	"database/sql"
	"time"
)

// backstopPages is how many pages the write-ahead log may hold before
// the writer checkpoints it itself, in the commit that crosses it: only
// when the background checkpointer falls that far behind (40 MB).
const backstopPages = 10000

// Checkpoint intervals: soon again while commits keep adding to the
// log, backing off to the longest while nothing does.
const (
	checkpointBusy = 100 * time.Millisecond
	checkpointIdle = time.Second
)

// checkpointInBackground copies the write-ahead log into the database
// file on its own connection, so that no commit waits for it: with
// SQLite's automatic checkpoints, the commit that crossed 1,000 pages
// copied them and synced both files first — the slowest of a hundred
// runs' requests waited on that. A PASSIVE checkpoint waits for no
// reader or writer; what a reader still uses is copied next time. It
// returns the function that stops it and waits until it has.
func checkpointInBackground(db *sql.DB) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		wait := checkpointBusy
		t := time.NewTimer(wait)
		defer t.Stop()
		var lastLog, lastDone int64 = -1, -1
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			var busy, log, copied int64
			err := db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied)
			switch {
			case err != nil || (log == lastLog && copied == lastDone):
				wait = min(2*wait, checkpointIdle) // nothing new, or a database gone away
			default:
				wait = checkpointBusy
			}
			lastLog, lastDone = log, copied
			t.Reset(wait)
		}
	}()
	return func() { close(quit); <-done }
}
