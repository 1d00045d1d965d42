package main

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestHeapProfileWithProfilingListener: main stops sampling heap
// profiles unless AIRLOCK_PPROF_LISTEN is set (nothing could read them,
// and the samples' records are never freed); with it set, the heap
// profile still records the server's allocations.
func TestHeapProfileWithProfilingListener(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary")
	}
	bin := buildBinary(t)
	demo := startDemo(t, bin, "", "AIRLOCK_PPROF_LISTEN=127.0.0.1:0")
	addrRE := regexp.MustCompile(`profiling endpoints listening.* addr=(\S+)`)
	var addr string
	waitFor(t, 10*time.Second, func() error {
		m := addrRE.FindStringSubmatch(demo.stderr.String())
		if m == nil {
			return fmt.Errorf("the profiling listener's address in the log")
		}
		addr = m[1]
		return nil
	})
	resp, err := httpClient.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// "heap profile: 12: 4096 [345: 67890] @ heap/524288": the bracket
	// counts the sampled allocations since the start.
	m := regexp.MustCompile(`^heap profile: \d+: \d+ \[(\d+): \d+\] @ heap/(\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("not a heap profile: %.200q", b)
	}
	if n, _ := strconv.Atoi(string(m[1])); n == 0 {
		t.Errorf("the heap profile sampled no allocation: %.200q", b)
	}
	if rate, _ := strconv.Atoi(string(m[2])); rate == 0 {
		t.Errorf("heap profile rate 0 with AIRLOCK_PPROF_LISTEN set")
	}
}
