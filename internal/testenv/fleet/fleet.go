// Package fleet simulates a fleet of SSH nodes in one process, for tests
// and benchmarks of fan-out at a scale that real sshd cannot reach on a
// small machine (sshd forks per connection and per session): each node
// is a golang.org/x/crypto/ssh server on a loopback listener of its own,
// with a host key of its own, accepting one client key. Nodes never fork:
// they interpret a few built-in commands (see Shell), including the
// command line sshexec builds for a step, so the SSH executor runs on
// them unchanged.
//
// It is test and benchmark code: it must not be imported by the server.
// It imports neither testing nor anything of Airlock's beyond the shape
// of sshexec's command line (see shell.go).
package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
)

// DefaultUser is the user name the nodes accept when Options.User is
// empty.
const DefaultUser = "airlock"

// Options configure a fleet.
type Options struct {
	// User is the only user name the nodes accept (DefaultUser if empty).
	User string
}

// Fleet is a set of simulated SSH nodes accepting one client key.
type Fleet struct {
	User      string
	ClientKey []byte // OpenSSH PEM private key of the key the nodes accept
	Nodes     []*Node
}

// Node is one simulated SSH endpoint.
type Node struct {
	Port    int
	HostKey string // authorized_keys line of its host key, for pinning

	ln     net.Listener
	cfg    *ssh.ServerConfig
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	groups map[int]context.CancelFunc // running commands by process group
	closed bool

	nextGroup atomic.Int64
	accepted  atomic.Int64
	sessions  atomic.Int64
	running   atomic.Int64
}

// Start starts n nodes on 127.0.0.1, each on a port of its own (the
// listener is kept open from the start: no port is reserved and
// released) and with an Ed25519 host key of its own, and a client key
// they all accept. Stop ends them.
func Start(n int, opt Options) (*Fleet, error) {
	if opt.User == "" {
		opt.User = DefaultUser
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	clientPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	f := &Fleet{User: opt.User, ClientKey: pem.EncodeToMemory(block)}
	for range n {
		node, err := startNode(opt.User, clientPub)
		if err != nil {
			f.Stop()
			return nil, err
		}
		f.Nodes = append(f.Nodes, node)
	}
	return f, nil
}

// Stop closes every node's listener and connections and waits for their
// goroutines. It may be called more than once.
func (f *Fleet) Stop() {
	for _, n := range f.Nodes {
		n.stop()
	}
}

func startNode(user string, clientPub ssh.PublicKey) (*Node, error) {
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return nil, err
	}
	want := clientPub.Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() != user || string(key.Marshal()) != string(want) {
				return nil, errors.New("unknown user or key")
			}
			return nil, nil
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n := &Node{Port: ln.Addr().(*net.TCPAddr).Port, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
		ln: ln, cfg: cfg, conns: map[net.Conn]struct{}{}, groups: map[int]context.CancelFunc{}}
	n.nextGroup.Store(1000)
	n.wg.Add(1)
	go n.accept()
	return n, nil
}

// Addr is the node's host:port.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// Conns is how many connections the node has accepted so far.
func (n *Node) Conns() int64 { return n.accepted.Load() }

// Sessions is how many sessions the node has opened so far.
func (n *Node) Sessions() int64 { return n.sessions.Load() }

// Running is how many commands run on the node now.
func (n *Node) Running() int64 { return n.running.Load() }

// Drop closes the node's open connections at once, as a network failure
// or a restarted sshd would; the node keeps accepting new ones.
func (n *Node) Drop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.conns {
		c.Close()
	}
}

func (n *Node) stop() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	n.ln.Close()
	for c := range n.conns {
		c.Close()
	}
	for _, cancel := range n.groups {
		cancel()
	}
	n.mu.Unlock()
	n.wg.Wait()
}

func (n *Node) accept() {
	defer n.wg.Done()
	for {
		c, err := n.ln.Accept()
		if err != nil {
			return // closed by stop
		}
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			c.Close()
			return
		}
		n.conns[c] = struct{}{}
		n.wg.Add(1)
		n.mu.Unlock()
		n.accepted.Add(1)
		go func() {
			defer n.wg.Done()
			n.serve(c)
			n.mu.Lock()
			delete(n.conns, c)
			n.mu.Unlock()
		}()
	}
}

func (n *Node) serve(c net.Conn) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, n.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var sessions sync.WaitGroup
	defer sessions.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		n.sessions.Add(1)
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			n.session(ch, creqs)
		}()
	}
}

// session serves one session channel: env requests are accepted and
// ignored, one exec request runs its command, a signal request or the
// client closing the channel kills it; shells, terminals and subsystems
// are refused.
func (n *Node) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	started := false
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				// The client closed the channel or the connection is gone.
				cancel()
				if started {
					<-done
				}
				ch.Close()
				return
			}
			switch {
			case req.Type == "env":
				_ = req.Reply(true, nil)
			case req.Type == "exec" && !started:
				var p struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &p); err != nil {
					_ = req.Reply(false, nil)
					continue
				}
				_ = req.Reply(true, nil)
				started = true
				go func() { done <- n.exec(ctx, p.Command, ch) }()
			case req.Type == "signal":
				cancel()
				if req.WantReply {
					_ = req.Reply(true, nil)
				}
			default:
				if req.WantReply {
					_ = req.Reply(false, nil)
				}
			}
		case code := <-done:
			started = false
			if code < 0 {
				_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
					Signal     string
					CoreDumped bool
					Message    string
					Lang       string
				}{Signal: "KILL"}))
			} else {
				_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(code)))
			}
			ch.Close()
			// Drain what the client still sends until it closes too.
			for range reqs {
			}
			return
		}
	}
}

// exec runs a command line under a process group of its own, so that
// `kill -KILL -- -GROUP` from another session reaches it.
func (n *Node) exec(ctx context.Context, command string, ch ssh.Channel) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	group := int(n.nextGroup.Add(1))
	n.mu.Lock()
	n.groups[group] = cancel
	n.mu.Unlock()
	n.running.Add(1)
	defer func() {
		n.running.Add(-1)
		n.mu.Lock()
		delete(n.groups, group)
		n.mu.Unlock()
	}()
	sh := &Shell{Stdin: ch, Stdout: ch, Stderr: ch.Stderr(), Group: group, Kill: n.kill}
	return sh.Exec(ctx, command)
}

// kill cancels the command running as group; it reports whether there
// was one.
func (n *Node) kill(group int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	cancel, ok := n.groups[group]
	if ok {
		cancel()
	}
	return ok
}

// String names the node for messages.
func (n *Node) String() string { return fmt.Sprintf("fleet node %s", n.Addr()) }
