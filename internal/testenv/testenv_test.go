package testenv_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/testenv"
)

// TestHelperNeedsPostgres is run as a child process by TestStrictMode.
func TestHelperNeedsPostgres(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "1" {
		t.Skip("run by TestStrictMode as a child process")
	}
	testenv.PostgresURL(t)
}

// TestStrictMode proves that a missing component skips with a reason
// normally and fails under AIRLOCK_TEST_STRICT=1, so CI cannot pass by
// running nothing.
func TestStrictMode(t *testing.T) {
	run := func(strict string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNeedsPostgres$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "AIRLOCK_TEST_STRICT="+strict, "AIRLOCK_TEST_POSTGRES_URL=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, "AIRLOCK_TEST_POSTGRES_URL is not set") {
		t.Fatalf("without strict mode: %v\n%s", err, out)
	}
	out, err = run("1")
	if err == nil || !strings.Contains(out, "--- FAIL") || !strings.Contains(out, "AIRLOCK_TEST_STRICT=1") {
		t.Fatalf("strict mode did not fail: %v\n%s", err, out)
	}
}
