package demo

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDPath is where Debian's openssh-server installs sshd.
const SSHDPath = "/usr/sbin/sshd"

// SSHD is one sshd process on a loopback port.
type SSHD struct {
	Port    int
	HostKey string // authorized_keys line of its host key
	Dir     string
	cmd     *exec.Cmd
}

// Fleet is a set of sshd processes accepting one client key for the
// current user: the demo's SSH nodes, and the tests'.
type Fleet struct {
	User      string
	ClientKey []byte // OpenSSH PEM private key
	Nodes     []*SSHD
}

// Stop kills the sshd processes.
func (f *Fleet) Stop() {
	for _, n := range f.Nodes {
		if n.cmd != nil && n.cmd.Process != nil {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
		}
	}
}

// KeyPair returns a fresh Ed25519 key as OpenSSH PEM and its public key.
func KeyPair() ([]byte, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, err
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(block), spub, nil
}

// StartSSHD starts n sshd processes under dir on free loopback ports, each
// with its own host key, accepting a fresh client key for the current
// user, and waits until they accept connections.
func StartSSHD(dir string, n int) (*Fleet, error) {
	if _, err := os.Stat(SSHDPath); err != nil {
		return nil, fmt.Errorf("sshd is not installed (%s; apt-get install openssh-server)", SSHDPath)
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	if u.Uid == "0" {
		_ = os.MkdirAll("/run/sshd", 0o755)
	}
	clientKey, clientPub, err := KeyPair()
	if err != nil {
		return nil, err
	}
	f := &Fleet{User: u.Username, ClientKey: clientKey}
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("sshd-%d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		hostKey, hostPub, err := KeyPair()
		if err != nil {
			return nil, err
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cfg := fmt.Sprintf("Port %d\nListenAddress 127.0.0.1\nHostKey %s/host_ed25519\nPidFile %s/sshd.pid\n"+
			"AuthorizedKeysFile %s/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"+
			"KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin yes\nLogLevel ERROR\n"+
			"MaxStartups 200:30:400\nMaxSessions 100\n", port, d, d, d)
		for name, body := range map[string][]byte{"host_ed25519": hostKey, "authorized_keys": ssh.MarshalAuthorizedKey(clientPub), "sshd_config": []byte(cfg)} {
			if err := os.WriteFile(filepath.Join(d, name), body, 0o600); err != nil {
				return nil, err
			}
		}
		cmd := exec.Command(SSHDPath, "-D", "-e", "-f", filepath.Join(d, "sshd_config"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			f.Stop()
			return nil, fmt.Errorf("start sshd: %w", err)
		}
		s := &SSHD{Port: port, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub))), Dir: d, cmd: cmd}
		f.Nodes = append(f.Nodes, s)
		if err := waitPort(port); err != nil {
			f.Stop()
			return nil, fmt.Errorf("sshd on port %d: %w: %s", port, err, stderr.String())
		}
	}
	return f, nil
}

func waitPort(port int) error {
	for range 500 {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("did not come up")
}
