package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHD is one real sshd process listening on a loopback port.
type SSHD struct {
	Port    int
	HostKey string // authorized_keys line of its host key
	Dir     string
	cmd     *exec.Cmd
}

// Fleet is a set of sshd processes that accept one client key for the
// current user.
type Fleet struct {
	User      string
	ClientKey []byte // OpenSSH PEM private key
	Nodes     []*SSHD
}

// SSHDPath is where Debian's openssh-server installs sshd.
const SSHDPath = "/usr/sbin/sshd"

func keyPair(t testing.TB) ([]byte, ssh.PublicKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), spub
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartSSHD starts n sshd processes on free loopback ports, each with its
// own host key, accepting a fresh client key for the current user. They
// are stopped when the test ends. Without sshd the test skips (fails
// under AIRLOCK_TEST_STRICT=1).
func StartSSHD(t testing.TB, n int) *Fleet {
	t.Helper()
	if _, err := os.Stat(SSHDPath); err != nil {
		Missing(t, "sshd is not installed ("+SSHDPath+"; apt-get install openssh-server); skipping SSH tests")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if u.Uid == "0" {
		_ = os.MkdirAll("/run/sshd", 0o755)
	}
	clientKey, clientPub := keyPair(t)
	f := &Fleet{User: u.Username, ClientKey: clientKey}
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := []string{}
	for range n {
		dir := t.TempDir()
		hostKey, hostPub := keyPair(t)
		must(t, os.WriteFile(filepath.Join(dir, "host_ed25519"), hostKey, 0o600))
		must(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600))
		port := freePort(t)
		cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_ed25519
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
LogLevel ERROR
MaxStartups 200:30:400
MaxSessions 100
`, port, dir, dir, dir)
		must(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600))
		cmd := exec.Command(SSHDPath, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start sshd: %v", err)
		}
		d := &SSHD{Port: port, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub))), Dir: dir, cmd: cmd}
		f.Nodes = append(f.Nodes, d)
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
				if err == nil {
					c.Close()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			errs = append(errs, fmt.Sprintf("sshd on port %d did not come up: %s", port, stderr.String()))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
