package api_test

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkAuthenticatedRequest measures GET /api/v1/me with an API token
// over loopback: authentication (token hash lookup, user and groups),
// middleware, JSON. It reports the median latency as p50-ms.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	e := newEnv(b, nil)
	tok := e.token("alice", e.user("alice", "dev"))
	req, _ := http.NewRequest("GET", e.url+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	lat := make([]time.Duration, 0, 100000)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
