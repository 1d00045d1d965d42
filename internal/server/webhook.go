package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// webhook posts checkpoint notes to an outside party (a witness, an
// append-only store). A post that fails (no answer, or an answer that is
// not 2xx) is retried with exponential backoff, in the background: signing
// never waits for the receiver. Each checkpoint is posted on its own; a
// receiver may see them out of order and keeps the largest.
type webhook struct {
	URL    string
	Client *http.Client
	Logger *slog.Logger
	// Attempts per note (default 6) and the first backoff (default 1s,
	// doubling).
	Attempts int
	Backoff  time.Duration

	wg sync.WaitGroup
}

// Publish posts note in the background, retrying as configured.
func (w *webhook) Publish(note string) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		attempts, backoff := w.Attempts, w.Backoff
		if attempts <= 0 {
			attempts = 6
		}
		if backoff <= 0 {
			backoff = time.Second
		}
		var err error
		for i := range attempts {
			if err = w.post(note); err == nil {
				return
			}
			if i < attempts-1 {
				time.Sleep(backoff << i)
			}
		}
		if w.Logger != nil {
			w.Logger.Error("checkpoint webhook: giving up", "url", w.URL, "attempts", attempts, "err", err)
		}
	}()
}

// Wait waits for the posts in flight (at shutdown, and in tests).
func (w *webhook) Wait() { w.wg.Wait() }

func (w *webhook) post(note string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, strings.NewReader(note))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	c := w.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
