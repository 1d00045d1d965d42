package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
	"github.com/airlockhq/airlock/internal/testenv/fleet"
)

const echoOK = `apiVersion: airlock/v1
kind: Procedure
name: echo-ok
owner: payments
risk: low
steps:
  - name: echo
    exec: ["echo", "ok"]
`

// runOnce requests a run over HTTP and waits until it is final, durable
// in the store. It returns the time from the request to the first step's
// start and to the observed end.
func runOnce(tb testing.TB, d *demoEnv, client *http.Client, req api.RunRequest) (time.Duration, time.Duration, *store.Run) {
	t0 := time.Now()
	code, out, _ := d.call("POST", "/api/v1/runs", d.tok["bob"], req)
	if code != 201 {
		tb.Fatalf("run: %d %v", code, out)
	}
	id := out["id"].(string)
	ch, stop := d.srv.Runs.Subscribe(id)
	defer stop()
	ctx := context.Background()
	for {
		r, err := d.srv.Store.RunGet(ctx, id)
		if err != nil {
			tb.Fatal(err)
		}
		if store.RunFinal(r.Status) {
			end := time.Since(t0)
			steps, _ := d.srv.Store.RunStepList(ctx, id)
			if r.Status != store.RunSucceeded || len(steps) == 0 {
				tb.Fatalf("run %s: %s %s", id, r.Status, r.Error)
			}
			return steps[0].StartedAt.Sub(t0), end, r
		}
		select {
		case <-ch:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func pct(ds []time.Duration, p int) float64 {
	slices.Sort(ds)
	return float64(ds[len(ds)*p/100].Microseconds()) / 1000
}

// benchEnv starts the demo server for a benchmark, on the driver named
// by AIRLOCK_BENCH_DRIVER: sqlite (the default, in the data directory) or
// postgres (a fresh schema on AIRLOCK_TEST_POSTGRES_URL, dropped after).
func benchEnv(b *testing.B) *demoEnv {
	t := &testing.T{}
	driver := os.Getenv("AIRLOCK_BENCH_DRIVER")
	if driver != "" && driver != "sqlite" && driver != "postgres" {
		b.Fatalf("AIRLOCK_BENCH_DRIVER=%q: expected sqlite or postgres", driver)
	}
	d := newDemoEnv(b, testenv.UseDriver(b, driver))
	d.install(t, echoOK)
	return d
}

// BenchmarkRunLocal: a trivial local procedure (echo ok), sequential
// requests over the API: request to first step started, and to finished
// with the run record and its audit events durable.
func BenchmarkRunLocal(b *testing.B) {
	d := benchEnv(b)
	req := api.RunRequest{Procedure: "echo-ok", Environment: "staging"}
	var starts, ends []time.Duration
	b.ResetTimer()
	for b.Loop() {
		s, e, _ := runOnce(b, d, nil, req)
		starts, ends = append(starts, s), append(ends, e)
	}
	b.StopTimer()
	b.ReportMetric(pct(starts, 50), "start-p50-ms")
	b.ReportMetric(pct(ends, 50), "done-p50-ms")
	b.ReportMetric(pct(ends, 99), "done-p99-ms")
}

// BenchmarkRunLocalConcurrent: 8 concurrent clients.
func BenchmarkRunLocalConcurrent(b *testing.B) {
	d := benchEnv(b)
	req := api.RunRequest{Procedure: "echo-ok", Environment: "staging"}
	b.SetParallelism(8 / max(1, testingProcs()))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			runOnce(b, d, nil, req)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkSSHFanOut compares a run of echo ok on N loopback sshd nodes
// with a bare golang.org/x/crypto/ssh loop doing the same (dial, session,
// run), with the same parallelism, in the same benchmark run.
func BenchmarkSSHFanOut(b *testing.B) {
	sizes := []int{10, 50}
	if os.Getenv("AIRLOCK_BENCH_SSH_200") == "1" {
		sizes = append(sizes, 200)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			f := testenv.StartSSHD(b, n)
			var nodes []fanOutNode
			for _, d := range f.Nodes {
				nodes = append(nodes, fanOutNode{d.Port, d.HostKey})
			}
			benchFanOut(b, f.User, f.ClientKey, nodes)
		})
	}
}

// BenchmarkSSHFanOutSimulated is BenchmarkSSHFanOut on simulated nodes
// (internal/testenv/fleet: one process, no fork), which show Airlock's
// own cost rather than sshd's; 1,000 nodes with
// AIRLOCK_BENCH_FLEET_1000=1. bench/fanout measures the same from a
// separate client process.
func BenchmarkSSHFanOutSimulated(b *testing.B) {
	sizes := []int{100}
	if os.Getenv("AIRLOCK_BENCH_FLEET_1000") == "1" {
		sizes = append(sizes, 1000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			f, err := fleet.Start(n, fleet.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(f.Stop)
			var nodes []fanOutNode
			for _, d := range f.Nodes {
				nodes = append(nodes, fanOutNode{d.Port, d.HostKey})
			}
			benchFanOut(b, f.User, f.ClientKey, nodes)
		})
	}
}

type fanOutNode struct {
	port    int
	hostKey string
}

func benchFanOut(b *testing.B, user string, clientKey []byte, nodes []fanOutNode) {
	n := len(nodes)
	d := benchEnv(b)
	t := &testing.T{}
	d.call("PUT", "/api/v1/secrets/ssh/fleet", d.tok["bob"], api.SecretRequest{Value: string(clientKey)})
	for i, node := range nodes {
		d.call("PUT", fmt.Sprintf("/api/v1/nodes/n%04d", i), d.tok["bob"], map[string]any{"name": fmt.Sprintf("n%04d", i),
			"address": "127.0.0.1", "port": node.port, "user": user, "environment": "staging", "tags": []string{"bench"},
			"host_key": node.hostKey, "credential": "ssh/fleet"})
	}
	par := min(n, 100)
	d.install(t, strings.Replace(strings.Replace(echoOK, "echo-ok", "fleet-echo", 1), "risk: low\n",
		fmt.Sprintf("risk: low\ntargets:\n  tags: [bench]\n  parallel: %d\n", par), 1))
	signer, _ := ssh.ParsePrivateKey(clientKey)
	bare := func() time.Duration {
		t0 := time.Now()
		sem := make(chan struct{}, par)
		var wg sync.WaitGroup
		for _, node := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				pinned, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(node.hostKey))
				c, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", node.port), &ssh.ClientConfig{User: user,
					Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.FixedHostKey(pinned),
					HostKeyAlgorithms: []string{pinned.Type()}})
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				s, _ := c.NewSession()
				defer s.Close()
				if _, err := s.Output("echo ok"); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		return time.Since(t0)
	}
	var airlockT, bareT []time.Duration
	b.ResetTimer()
	for b.Loop() {
		_, e, _ := runOnce(b, d, nil, api.RunRequest{Procedure: "fleet-echo", Environment: "staging"})
		airlockT = append(airlockT, e)
		bareT = append(bareT, bare())
	}
	b.StopTimer()
	b.ReportMetric(pct(airlockT, 50), "airlock-p50-ms")
	b.ReportMetric(pct(bareT, 50), "bare-ssh-p50-ms")
	b.ReportMetric(pct(airlockT, 50)/pct(bareT, 50), "ratio")
}

// BenchmarkSSEViewers: the duration of a run that writes output steadily,
// with no live viewers and with 100 concurrent SSE viewers.
func BenchmarkSSEViewers(b *testing.B) {
	d := benchEnv(b)
	t := &testing.T{}
	d.install(t, `apiVersion: airlock/v1
kind: Procedure
name: chatty
owner: payments
risk: low
steps:
  - name: talk
    script: |
      i=0; while [ $i -lt 200 ]; do echo "line $i of steady output from the procedure"; i=$((i+1)); sleep 0.005; done
`)
	for _, viewers := range []int{0, 100} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) {
			var durs []time.Duration
			for b.Loop() {
				code, out, _ := d.call("POST", "/api/v1/runs", d.tok["bob"], api.RunRequest{Procedure: "chatty", Environment: "staging"})
				if code != 201 {
					b.Fatal(out)
				}
				id := out["id"].(string)
				var wg sync.WaitGroup
				for range viewers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						req, _ := http.NewRequest("GET", d.url+"/api/v1/runs/"+id+"/output", nil)
						req.Header.Set("Authorization", "Bearer "+d.tok["bob"])
						req.Header.Set("Accept", "text/event-stream")
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						defer resp.Body.Close()
						sc := bufio.NewScanner(resp.Body)
						for sc.Scan() {
							if sc.Text() == "event: end" {
								return
							}
						}
					}()
				}
				var r *store.Run
				for {
					r, _ = d.srv.Store.RunGet(context.Background(), id)
					if store.RunFinal(r.Status) {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				wg.Wait()
				durs = append(durs, r.FinishedAt.Sub(r.StartedAt))
			}
			b.ReportMetric(pct(durs, 50), "run-p50-ms")
		})
	}
}

// BenchmarkInclusionProof: GET /api/v1/audit/proof/inclusion over the API.
func BenchmarkInclusionProof(b *testing.B) {
	d := benchEnv(b)
	size, _ := d.srv.Store.AuditSize(context.Background())
	var lat []time.Duration
	i := int64(0)
	for b.Loop() {
		t0 := time.Now()
		code, out, _ := d.call("GET", fmt.Sprintf("/api/v1/audit/proof/inclusion?index=%d&size=%d", i%size, size), d.tok["dana"], nil)
		if code != 200 {
			b.Fatal(out)
		}
		lat = append(lat, time.Since(t0))
		i++
	}
	b.ReportMetric(pct(lat, 50), "p50-ms")
}
