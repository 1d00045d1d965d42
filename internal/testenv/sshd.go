package testenv

import (
	"os"
	"testing"

	"github.com/airlockhq/airlock/internal/demo"
)

// StartSSHD starts n SSH nodes served by the real sshd on loopback ports
// the test process binds itself, each with its own host key, accepting a
// fresh client key for the current user (see demo.StartSSHD). They stop
// when the test ends. Without sshd the test skips, or fails under
// AIRLOCK_TEST_STRICT=1.
func StartSSHD(t testing.TB, n int) *demo.Fleet {
	t.Helper()
	if _, err := os.Stat(demo.SSHDPath); err != nil {
		Missing(t, "sshd is not installed ("+demo.SSHDPath+"; apt-get install openssh-server); skipping SSH tests")
	}
	f, err := demo.StartSSHD(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}
