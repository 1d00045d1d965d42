package email_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/email"
)

// --- a real SMTP server, in the test -------------------------------------

// received is one message the server accepted.
type received struct {
	From string
	To   []string
	Data []byte
	TLS  bool   // the conversation was encrypted
	User string // who authenticated, if anyone
}

// server is a go-smtp server on a loopback listener that records what
// it is told.
type server struct {
	Host string
	Port int

	mu       sync.Mutex
	got      []received
	commands []string // AUTH, MAIL, RCPT, DATA as they came
	wire     bytes.Buffer
}

type serverOpts struct {
	starttls bool // offer STARTTLS (with cert)
	implicit bool // TLS from the first byte (with cert)
	cert     tls.Certificate
	// user and password, when set, require AUTH (PLAIN, or LOGIN when
	// loginOnly) before MAIL.
	user, password string
	loginOnly      bool
	insecureAuth   bool  // offer AUTH without TLS (to prove the client refuses)
	rcptErr        error // the answer to RCPT
}

func startServer(t *testing.T, o serverOpts) *server {
	t.Helper()
	srv := &server{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{srv: srv, o: o, tls: isTLS}, nil
	}))
	s.Domain = "mx.test"
	s.ReadTimeout, s.WriteTimeout = time.Minute, time.Minute
	s.AllowInsecureAuth = o.insecureAuth
	s.ErrorLog = log.New(io.Discard, "", 0)
	s.Debug = lockedWriter{&srv.mu, &srv.wire}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.starttls || o.implicit {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{o.cert}}
	}
	if o.implicit {
		ln = tls.NewListener(ln, s.TLSConfig)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		ln.Close() // Close misses a listener that Serve has not registered yet
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("waited 30s for the SMTP server to stop")
		}
	})
	addr := ln.Addr().(*net.TCPAddr)
	srv.Host, srv.Port = addr.IP.String(), addr.Port
	return srv
}

func (s *server) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func (s *server) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

func (s *server) transcript() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wire.String()
}

func (s *server) note(cmd string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands = append(s.commands, cmd)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type session struct {
	srv  *server
	o    serverOpts
	tls  bool
	user string
	cur  received
}

func (s *session) AuthMechanisms() []string {
	switch {
	case s.o.user == "":
		return nil
	case s.o.loginOnly:
		return []string{"LOGIN"}
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	s.srv.note("AUTH " + mech)
	check := func(username, password string) error {
		if username != s.o.user || password != s.o.password {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}
	if mech == "LOGIN" {
		return &loginServer{check: check}, nil
	}
	return sasl.NewPlainServer(func(_, username, password string) error { return check(username, password) }), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.srv.note("MAIL")
	if s.o.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = received{From: from, TLS: s.tls, User: s.user}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.note("RCPT")
	if s.o.rcptErr != nil {
		return s.o.rcptErr
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	s.srv.note("DATA")
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.srv.mu.Lock()
	s.srv.got = append(s.srv.got, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{TLS: s.tls, User: s.user} }
func (s *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN (go-sasl has the client
// only): ask for the username, then the password.
type loginServer struct {
	check    func(username, password string) error
	step     int
	username string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if response == nil {
			return []byte("Username:"), false, nil
		}
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.username, string(response))
	}
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, valid
// around the wall clock that TLS verification reads, and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mx.test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// --- the message ----------------------------------------------------------

func runRequest(id string) *notify.Message {
	return &notify.Message{
		ID: id, Kind: notify.KindApprovalNeeded, Type: notify.RunRequest, Subject: "run_42",
		Title: "Approval needed: restart-web on prod",
		Text:  "bob asks to run restart-web.\nReason: deploy 1.2.3",
		Fields: []notify.Field{
			{Label: "Procedure", Value: "restart-web"},
			{Label: "Environment", Value: "prod"},
			{Label: "Parameter", Value: `<script>alert("x")</script>`},
		},
		Link:    "https://airlock.example.com/runs/run_42",
		Actions: []notify.Action{{Name: "approve", Label: "Approve", Value: "run_42"}},
		Target:  "alice@example.com",
	}
}

// parsed is a delivered email taken apart.
type parsed struct {
	Header      mail.Header
	Subject     string
	ContentType string
	Text, HTML  string
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, data)
	}
	p := parsed{Header: msg.Header}
	if p.Subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	p.ContentType = mt
	if mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q, want multipart/alternative\n%s", mt, data)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		if part.Header.Get("Content-Transfer-Encoding") == "base64" {
			if body, err = base64.StdEncoding.DecodeString(strings.ReplaceAll(string(body), "\r\n", "")); err != nil {
				t.Fatal(err)
			}
		}
		pt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch pt {
		case "text/plain":
			p.Text = string(body)
		case "text/html":
			p.HTML = string(body)
		default:
			t.Errorf("unexpected part %q", pt)
		}
	}
	return p
}

func newChannel(t *testing.T, cfg config.NotifyEmail, password string, opts ...email.Option) *email.Channel {
	t.Helper()
	ch, err := email.New(cfg, password, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return ch
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// --- delivery -------------------------------------------------------------

func TestSendOverSTARTTLSWithAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := startServer(t, serverOpts{starttls: true, cert: cert, user: "airlock", password: "s3cret"})
	ch := newChannel(t, config.NotifyEmail{Host: srv.Host, Port: srv.Port, Username: "airlock", From: "Airlock <airlock@example.com>"},
		"s3cret", email.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if ch.Name() != "email" {
		t.Errorf("Name() = %q, want email", ch.Name())
	}
	m := runRequest("ntf_01J9ZK7Q")
	if err := ch.Send(ctx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	// The dispatcher sends a delivery again after a crash mid-send: the
	// repeat carries the same Message-ID.
	if err := ch.Send(ctx(t), m); err != nil {
		t.Fatalf("Send again: %v", err)
	}
	got := srv.messages()
	if len(got) != 2 {
		t.Fatalf("server received %d messages, want 2", len(got))
	}
	r := got[0]
	if r.From != "airlock@example.com" || len(r.To) != 1 || r.To[0] != "alice@example.com" {
		t.Errorf("envelope from %q to %q, want airlock@example.com to [alice@example.com]", r.From, r.To)
	}
	if !r.TLS {
		t.Error("the message travelled without TLS")
	}
	if r.User != "airlock" {
		t.Errorf("authenticated as %q, want airlock", r.User)
	}
	if seen := srv.seen(); seen[0] != "AUTH PLAIN" {
		t.Errorf("commands %q, want AUTH PLAIN first", seen)
	}

	p := parse(t, r.Data)
	for k, want := range map[string]string{
		"From":            `"Airlock" <airlock@example.com>`,
		"To":              "<alice@example.com>",
		"Message-Id":      "<ntf_01J9ZK7Q@example.com>",
		"Auto-Submitted":  "auto-generated",
		"X-Airlock-Event": "run.request",
	} {
		if v := p.Header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if p.Subject != m.Title {
		t.Errorf("Subject = %q, want %q", p.Subject, m.Title)
	}
	if _, err := p.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if again := parse(t, got[1].Data).Header.Get("Message-Id"); again != p.Header.Get("Message-Id") {
		t.Errorf("Message-ID changed between attempts: %q then %q", p.Header.Get("Message-Id"), again)
	}

	for _, want := range []string{m.Title, "bob asks to run restart-web.", "Reason: deploy 1.2.3", "Procedure:",
		"restart-web", "Environment:", `<script>alert("x")</script>`, "Open in Airlock: https://airlock.example.com/runs/run_42"} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("plain-text part lacks %q:\n%s", want, p.Text)
		}
	}
	for _, want := range []string{
		"<h1 style=\"margin:0 0 16px;font-size:18px\">Approval needed: restart-web on prod</h1>",
		"<p style=\"margin:0 0 8px\">Reason: deploy 1.2.3</p>",
		">Environment</th>", ">prod</td>",
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;",
		`href="https://airlock.example.com/runs/run_42"`, ">Open in Airlock</a>",
	} {
		if !strings.Contains(p.HTML, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, p.HTML)
		}
	}
	if strings.Contains(p.HTML, "<script") {
		t.Errorf("HTML part holds a field value unescaped:\n%s", p.HTML)
	}
	for _, part := range []string{p.Text, p.HTML} {
		if strings.Contains(part, "Approve") {
			t.Errorf("email offers the chat actions; approval belongs on the linked page:\n%s", part)
		}
	}
}

func TestSendOverImplicitTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := startServer(t, serverOpts{implicit: true, cert: cert, user: "airlock", password: "s3cret"})
	ch := newChannel(t, config.NotifyEmail{Host: srv.Host, Port: srv.Port, TLS: "tls", Username: "airlock", From: "airlock@example.com"},
		"s3cret", email.WithTLSConfig(&tls.Config{RootCAs: pool}))
	m := runRequest("ntf_tls")
	m.Kind, m.Type, m.Title = notify.KindTest, notify.Test, "Airlock test message"
	if err := ch.Send(ctx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.messages()
	if len(got) != 1 || !got[0].TLS || got[0].User != "airlock" {
		t.Fatalf("received %+v, want one message over TLS from airlock", got)
	}
	p := parse(t, got[0].Data)
	if p.Subject != "Airlock test message" || p.Header.Get("X-Airlock-Event") != notify.Test {
		t.Errorf("Subject %q, X-Airlock-Event %q", p.Subject, p.Header.Get("X-Airlock-Event"))
	}
}

func TestAuthLoginWhenThatIsAllTheServerOffers(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := startServer(t, serverOpts{starttls: true, cert: cert, user: "airlock", password: "s3cret", loginOnly: true})
	ch := newChannel(t, config.NotifyEmail{Host: srv.Host, Port: srv.Port, TLS: "starttls", Username: "airlock", From: "airlock@example.com"},
		"s3cret", email.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if err := ch.Send(ctx(t), runRequest("ntf_login")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.messages(); len(got) != 1 || got[0].User != "airlock" {
		t.Fatalf("received %+v, want one message from airlock", got)
	}
	if seen := srv.seen(); seen[0] != "AUTH LOGIN" {
		t.Errorf("commands %q, want AUTH LOGIN first", seen)
	}
}

func TestPlainToALocalRelay(t *testing.T) {
	srv := startServer(t, serverOpts{})
	ch := newChannel(t, config.NotifyEmail{Host: srv.Host, Port: srv.Port, TLS: "none", From: "airlock@example.com"}, "")
	if err := ch.Send(ctx(t), runRequest("ntf_plain")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.messages(); len(got) != 1 || got[0].TLS || got[0].To[0] != "alice@example.com" {
		t.Fatalf("received %+v, want one message in clear", got)
	}
}

// --- failures -------------------------------------------------------------

func TestSTARTTLSIsMandatory(t *testing.T) {
	// The server (or a man in the middle) does not offer STARTTLS but
	// would take a password and mail in clear.
	srv := startServer(t, serverOpts{user: "airlock", password: "s3cret", insecureAuth: true})
	ch := newChannel(t, config.NotifyEmail{Host: srv.Host, Port: srv.Port, Username: "airlock", From: "airlock@example.com"}, "s3cret")
	err := ch.Send(ctx(t), runRequest("ntf_nostarttls"))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Send: %v, want an error about STARTTLS", err)
	}
	if notify.IsPermanent(err) {
		t.Errorf("Send: %v is permanent; a fixed server should get the message later", err)
	}
	if seen := srv.seen(); len(seen) != 0 || len(srv.messages()) != 0 {
		t.Errorf("the server saw %q in clear, want nothing", seen)
	}
	wire := srv.transcript()
	for _, secret := range []string{"s3cret", base64.StdEncoding.EncodeToString([]byte("\x00airlock\x00s3cret")), "MAIL FROM", "alice@example.com"} {
		if strings.Contains(wire, secret) {
			t.Errorf("%q went over the wire in clear:\n%s", secret, wire)
		}
	}
}

func TestCertificateIsVerified(t *testing.T) {
	cert, _ := selfSigned(t)
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			srv := startServer(t, serverOpts{starttls: mode == "starttls", implicit: mode == "tls", cert: cert})
			// No WithTLSConfig: the system roots do not trust the test's CA.
			ch := newChannel(t, config.NotifyEmail{Host: srv.Host, Port: srv.Port, TLS: mode, From: "airlock@example.com"}, "")
			err := ch.Send(ctx(t), runRequest("ntf_untrusted"))
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Fatalf("Send: %v, want a certificate signed by an unknown authority", err)
			}
			if len(srv.messages()) != 0 {
				t.Error("a message was delivered to an unverified server")
			}
		})
	}
}

// TestServerDownIsTriedAgain: a server that hangs up on every
// connection (kept listening for the whole test: no port is given up and
// reused) fails the send, and not for good.
func TestServerDownIsTriedAgain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	ch := newChannel(t, config.NotifyEmail{Host: "127.0.0.1", Port: port, From: "airlock@example.com"}, "")
	err = ch.Send(ctx(t), runRequest("ntf_down"))
	if err == nil {
		t.Fatal("Send to a server that hangs up: no error")
	}
	if notify.IsPermanent(err) {
		t.Errorf("Send: %v is permanent; the server may be back later", err)
	}
}

func TestRejectionsPermanentOrNot(t *testing.T) {
	cert, pool := selfSigned(t)
	for _, tc := range []struct {
		code      int
		enhanced  smtp.EnhancedCode
		permanent bool
	}{
		{550, smtp.EnhancedCode{5, 1, 1}, true},  // no such mailbox
		{553, smtp.EnhancedCode{5, 1, 3}, true},  // mailbox name not allowed
		{451, smtp.EnhancedCode{4, 3, 0}, false}, // try again later
		{452, smtp.EnhancedCode{4, 2, 2}, false}, // mailbox full for now
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			srv := startServer(t, serverOpts{starttls: true, cert: cert,
				rcptErr: &smtp.SMTPError{Code: tc.code, EnhancedCode: tc.enhanced, Message: "refused by the test"}})
			ch := newChannel(t, config.NotifyEmail{Host: srv.Host, Port: srv.Port, From: "airlock@example.com"}, "",
				email.WithTLSConfig(&tls.Config{RootCAs: pool}))
			err := ch.Send(ctx(t), runRequest("ntf_refused"))
			if err == nil || !strings.Contains(err.Error(), strconv.Itoa(tc.code)) {
				t.Fatalf("Send: %v, want the server's %d", err, tc.code)
			}
			if notify.IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, notify.IsPermanent(err), tc.permanent)
			}
			if len(srv.messages()) != 0 {
				t.Error("a refused message was delivered")
			}
		})
	}
}

func TestRejectedLoginIsPermanent(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := startServer(t, serverOpts{starttls: true, cert: cert, user: "airlock", password: "s3cret"})
	ch := newChannel(t, config.NotifyEmail{Host: srv.Host, Port: srv.Port, Username: "airlock", From: "airlock@example.com"},
		"not-the-pw-9f3k", email.WithTLSConfig(&tls.Config{RootCAs: pool}))
	err := ch.Send(ctx(t), runRequest("ntf_badlogin"))
	if err == nil || !strings.Contains(err.Error(), "535") || !notify.IsPermanent(err) {
		t.Fatalf("Send: %v, want a permanent error with the server's 535", err)
	}
	if strings.Contains(err.Error(), "not-the-pw-9f3k") {
		t.Errorf("the error %q holds the password", err)
	}
	if len(srv.messages()) != 0 {
		t.Error("a message was delivered without a login")
	}
}

func TestBadRecipientIsPermanent(t *testing.T) {
	srv := startServer(t, serverOpts{})
	ch := newChannel(t, config.NotifyEmail{Host: srv.Host, Port: srv.Port, TLS: "none", From: "airlock@example.com"}, "")
	for _, target := range []string{"", "alice", "alice@example.com, mallory@example.com", "alice@example.com\r\nBcc: mallory@example.com"} {
		m := runRequest("ntf_bad")
		m.Target = target
		err := ch.Send(ctx(t), m)
		if !notify.IsPermanent(err) {
			t.Errorf("Send to %q: %v, want a permanent error", target, err)
		}
	}
	if seen := srv.seen(); len(seen) != 0 {
		t.Errorf("the server was asked %q for bad recipients", seen)
	}
}

func TestCancelStopsASend(t *testing.T) {
	// A server that accepts and then says nothing, not even its greeting.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ch := newChannel(t, config.NotifyEmail{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, From: "airlock@example.com"}, "")
	c, cancel := context.WithCancel(ctx(t))
	result := make(chan error, 1)
	go func() { result <- ch.Send(c, runRequest("ntf_cancel")) }()
	select {
	case conn := <-accepted:
		defer conn.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("waited 30s for the channel to connect")
	}
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Send: %v, want context.Canceled", err)
		}
		if notify.IsPermanent(err) {
			t.Errorf("Send: %v is permanent", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("waited 20s for Send to return after its context was cancelled")
	}
}

// --- configuration --------------------------------------------------------

func TestNewRefusesUnsafeOrBrokenConfig(t *testing.T) {
	ok := config.NotifyEmail{Host: "smtp.example.com", From: "airlock@example.com"}
	for _, tc := range []struct {
		name     string
		change   func(*config.NotifyEmail)
		password string
		want     string // in the error; "" for none
	}{
		{"defaults", func(*config.NotifyEmail) {}, "", ""},
		{"auth", func(c *config.NotifyEmail) { c.Username = "airlock" }, "pw", ""},
		{"none to 127.0.0.1", func(c *config.NotifyEmail) { c.TLS, c.Host = "none", "127.0.0.1" }, "", ""},
		{"none to localhost", func(c *config.NotifyEmail) { c.TLS, c.Host = "none", "localhost" }, "", ""},
		{"none to ::1", func(c *config.NotifyEmail) { c.TLS, c.Host = "none", "::1" }, "", ""},
		{"none to a remote host", func(c *config.NotifyEmail) { c.TLS = "none" }, "", "notify.email.tls: none sends mail in clear"},
		{"none to a remote address", func(c *config.NotifyEmail) { c.TLS, c.Host = "none", "192.0.2.10" }, "", "notify.email.tls"},
		{"none with a password", func(c *config.NotifyEmail) { c.TLS, c.Host, c.Username = "none", "127.0.0.1", "airlock" }, "pw", "notify.email.username"},
		{"no host", func(c *config.NotifyEmail) { c.Host = "" }, "", "notify.email.host"},
		{"port in host", func(c *config.NotifyEmail) { c.Host = "smtp.example.com:587" }, "", "notify.email.port"},
		{"unknown tls", func(c *config.NotifyEmail) { c.TLS = "ssl" }, "", "notify.email.tls"},
		{"bad port", func(c *config.NotifyEmail) { c.Port = 70000 }, "", "notify.email.port"},
		{"bad from", func(c *config.NotifyEmail) { c.From = "airlock" }, "", "notify.email.from"},
		{"username without password", func(c *config.NotifyEmail) { c.Username = "airlock" }, "", "notify.email.password_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.change(&cfg)
			ch, err := email.New(cfg, tc.password)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			case tc.want != "" && ch != nil:
				t.Fatal("New returned a channel with its error")
			}
		})
	}
}

func TestDefaultPorts(t *testing.T) {
	// Each mode dials its default port: a listener there would be
	// another process's, so watch where the dial goes instead.
	for mode, want := range map[string]string{"": "587", "starttls": "587", "tls": "465", "none": "25"} {
		ch := newChannel(t, config.NotifyEmail{Host: "127.0.0.1", TLS: mode, From: "airlock@example.com"}, "")
		if got := fmt.Sprint(ch); !strings.Contains(got, "127.0.0.1:"+want) {
			t.Errorf("mode %q: channel %s, want port %s", mode, got, want)
		}
	}
}

func TestMessageIDIsStableAndSafe(t *testing.T) {
	ch := newChannel(t, config.NotifyEmail{Host: "smtp.example.com", From: "Airlock <noreply@airlock.example.com>"}, "")
	if got := ch.MessageID("ntf_01J9"); got != "ntf_01J9@airlock.example.com" {
		t.Errorf("MessageID = %q", got)
	}
	odd := ch.MessageID("run.expiring:run 1>\r\nBcc: x")
	if odd != ch.MessageID("run.expiring:run 1>\r\nBcc: x") {
		t.Error("MessageID of the same ID differs")
	}
	if strings.ContainsAny(odd, " <>\r\n:") || odd == ch.MessageID("run.expiring:run 2") {
		t.Errorf("MessageID(odd) = %q, want a distinct dot-atom", odd)
	}
}
