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
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDPath is where Debian's openssh-server installs sshd.
const SSHDPath = "/usr/sbin/sshd"

// stopGrace is how long Stop lets a connection's sshd end once the
// connection is shut down, before it is killed.
const stopGrace = 5 * time.Second

// SSHD is one SSH node on a loopback port. This process binds the port
// and keeps it: each connection it accepts is served by its own
// `sshd -i` (inetd mode) with the connection's socket as its stdin and
// stdout. No port is borrowed and handed over, so nothing else can be
// answering on it, and no listening sshd outlives this process.
type SSHD struct {
	Port    int
	HostKey string // authorized_keys line of its host key
	Dir     string

	config    string
	log       *os.File // the sshd processes' stderr
	ln        *net.TCPListener
	accepting chan struct{} // closed when the accept loop has returned
	children  sync.WaitGroup
	mu        sync.Mutex
	running   map[*exec.Cmd]*net.TCPConn
	stopOnce  sync.Once
}

// Fleet is a set of SSH nodes accepting one client key for the current
// user: the demo's SSH nodes, and the tests'.
type Fleet struct {
	User      string
	ClientKey []byte // OpenSSH PEM private key
	Nodes     []*SSHD
}

// Stop closes the nodes' ports and ends their sshd processes. It may be
// called more than once.
func (f *Fleet) Stop() {
	for _, n := range f.Nodes {
		n.stop()
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

// StartSSHD starts n SSH nodes under dir on loopback ports this process
// binds, each with its own host key, accepting a fresh client key for the
// current user. It returns once each node has completed an SSH handshake
// with its pinned host key and accepted the client key.
//
// A node's sessions get a HOME of their own (an empty directory under
// the node's), so that the shell the user's sessions start reads no
// startup files of whoever runs the demo or the tests: a ~/.bashrc that
// runs `pyenv init` costs a second per session, and a fan-out of 20 nodes
// opens 40 of them.
func StartSSHD(dir string, n int) (*Fleet, error) {
	if _, err := os.Stat(SSHDPath); err != nil {
		return nil, fmt.Errorf("sshd is not installed (%s; apt-get install openssh-server)", SSHDPath)
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	if u.Uid == "0" {
		_ = os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	}
	clientKey, clientPub, err := KeyPair()
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(clientKey)
	if err != nil {
		return nil, err
	}
	f := &Fleet{User: u.Username, ClientKey: clientKey}
	for i := range n {
		s, err := startNode(filepath.Join(dir, fmt.Sprintf("sshd-%d", i)), clientPub)
		if err != nil {
			f.Stop()
			return nil, err
		}
		f.Nodes = append(f.Nodes, s)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range f.Nodes {
		wg.Go(func() { errs[i] = s.check(u.Username, signer) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

// sshdConfig is a node's sshd_config. Port and ListenAddress are absent:
// in inetd mode sshd serves the socket it is given.
const sshdConfig = `HostKey "%[1]s/host_ed25519"
AuthorizedKeysFile "%[1]s/authorized_keys"
SetEnv "HOME=%[1]s/home"
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
LogLevel ERROR
MaxSessions 100
`

func startNode(d string, clientPub ssh.PublicKey) (*SSHD, error) {
	if strings.ContainsAny(d, "\"\\\n") {
		return nil, fmt.Errorf("sshd directory %q: sshd_config cannot name a path with a quote, backslash or newline", d)
	}
	if err := os.MkdirAll(filepath.Join(d, "home"), 0o700); err != nil {
		return nil, err
	}
	hostKey, hostPub, err := KeyPair()
	if err != nil {
		return nil, err
	}
	for name, body := range map[string][]byte{"host_ed25519": hostKey, "authorized_keys": ssh.MarshalAuthorizedKey(clientPub),
		"sshd_config": fmt.Appendf(nil, sshdConfig, d)} {
		if err := os.WriteFile(filepath.Join(d, name), body, 0o600); err != nil {
			return nil, err
		}
	}
	log, err := os.OpenFile(filepath.Join(d, "sshd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Close()
		return nil, err
	}
	s := &SSHD{Port: ln.Addr().(*net.TCPAddr).Port, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub))), Dir: d,
		config: filepath.Join(d, "sshd_config"), log: log, ln: ln, accepting: make(chan struct{}), running: map[*exec.Cmd]*net.TCPConn{}}
	go s.accept()
	return s, nil
}

// accept hands each connection to an sshd of its own until the listener
// is closed.
func (s *SSHD) accept() {
	defer close(s.accepting)
	for {
		c, err := s.ln.AcceptTCP()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of file descriptors, say: give it a moment
			fmt.Fprintf(s.log, "airlock: accept: %v\n", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err := s.serve(c); err != nil {
			fmt.Fprintf(s.log, "airlock: %v\n", err)
		}
	}
}

// serve starts `sshd -i` on the connection's socket. The socket itself,
// not a pipe, is its stdin and stdout, so that sshd sees the peer's
// address as it would behind its own listener. This process keeps the
// connection until that sshd has exited, to shut it down on Stop.
// That sshd is killed when this process dies, however it dies.
func (s *SSHD) serve(c *net.TCPConn) error {
	sock, err := c.File()
	if err != nil {
		c.Close()
		return fmt.Errorf("connection socket: %w", err)
	}
	defer sock.Close() // the child has its own copy
	cmd := exec.Command(SSHDPath, "-i", "-e", "-f", s.config)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sock, sock, s.log
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		c.Close()
		return fmt.Errorf("start sshd -i: %w", err)
	}
	s.mu.Lock()
	s.running[cmd] = c
	s.mu.Unlock()
	s.children.Go(func() {
		_ = cmd.Wait()
		s.mu.Lock()
		delete(s.running, cmd)
		s.mu.Unlock()
		c.Close()
	})
	return nil
}

// check completes a handshake with the node, verifying its host key, and
// authenticates with the client key.
func (s *SSHD) check(user string, signer ssh.Signer) error {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostKey))
	if err != nil {
		return err
	}
	c, err := ssh.Dial("tcp", s.ln.Addr().String(), &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(pub), HostKeyAlgorithms: []string{pub.Type()}, Timeout: time.Minute})
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(s.Dir, "sshd.log"))
		return fmt.Errorf("sshd on port %d: %w; its log:\n%s", s.Port, err, b)
	}
	return c.Close()
}

// stop closes the port and shuts down each open connection, so that its
// sshd ends as it does when a client disconnects; it kills those still
// running after stopGrace, and waits for all of them.
func (s *SSHD) stop() {
	s.stopOnce.Do(func() {
		s.ln.Close()
		<-s.accepting // no sshd starts after this
		s.mu.Lock()
		for _, c := range s.running {
			_ = c.CloseRead()
			_ = c.CloseWrite()
		}
		s.mu.Unlock()
		kill := time.AfterFunc(stopGrace, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for cmd := range s.running {
				_ = cmd.Process.Kill()
			}
		})
		s.children.Wait()
		kill.Stop()
		s.log.Close()
	})
}
