package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestOutputWakesViewersOnOtherReplicas: a run executes on replica A; a
// viewer subscribed on replica B, which does not execute it, is woken by
// A's output through PostgreSQL's notices. B's subscription is only ever
// signalled by its broker (the 1 s re-read is the API handler's, not
// used here), so without notices the wait below runs out.
func TestOutputWakesViewersOnOtherReplicas(t *testing.T) {
	a := testenv.DemoServer(t, testenv.UseDriver(t, "postgres"))
	approveGate(t, a, "gated", false)
	a.Serve(t)
	g := startGate(t, a, "gated") // claimed by A: B does not exist yet

	cfg := a.Config
	cfg.Data = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Secrets.MasterKeyFile = filepath.Join(a.Config.Data, "master.key")
	cfg.Audit.KeyFile = filepath.Join(a.Config.Data, "audit.key")
	b, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Listen(); err != nil {
		b.Close()
		t.Fatal(err)
	}
	// B's listener, once connected, wakes every viewer it has: a probe
	// viewer, there before it, says when it listens, so that no later
	// signal is that one.
	probe, stopProbe := b.Runs.Subscribe("run_probe")
	defer stopProbe()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.Serve(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("replica B: %v", err)
		}
	})
	select {
	case <-probe:
	case <-time.After(time.Minute):
		t.Fatal("waited a minute for replica B's listener to connect (its wake-all)")
	}
	woken, stopView := b.Runs.Subscribe(g.run.ID)
	defer stopView()
	select {
	case <-woken:
		t.Fatal("replica B woke the viewer of a run nobody changed")
	default:
	}

	g.open() // A prints "last step done" and ends the run
	deadline := time.After(time.Minute)
	for {
		select {
		case <-woken:
		case <-deadline:
			t.Fatalf("waited a minute for replica B's viewer of %s to be woken after A's output", g.run.ID)
		}
		chunks, err := b.Store.RunOutputList(context.Background(), g.run.ID, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		for _, c := range chunks {
			out = append(out, c.Data...)
		}
		if bytes.Contains(out, []byte("last step done")) {
			break
		}
	}
	g.waitFinal()
}
