// Package email sends notifications by email through an SMTP server
// (github.com/wneessen/go-mail): one message per delivery, a plain-text
// and an HTML part, and a link to the page where the person looks or
// acts. Email carries no actions: approving happens on that page.
//
// Transport security is mandatory: STARTTLS (the default) must succeed
// or nothing is sent, implicit TLS is the other choice, and plain SMTP
// is allowed only to a relay on the same machine. The password is never
// sent without TLS.
//
// It must not import the store or the services: it sends what the
// dispatcher hands it.
package email

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/notify"
)

// TLS modes of config.NotifyEmail.TLS.
const (
	ModeSTARTTLS = "starttls"
	ModeTLS      = "tls"
	ModeNone     = "none"
)

// Timeouts. DialTimeout bounds the connection and each SMTP command;
// SendTimeout the whole conversation, whatever the caller's context
// allows.
const (
	DialTimeout = 30 * time.Second
	SendTimeout = 2 * time.Minute
)

// Channel sends email through one SMTP server. It is safe for concurrent
// use: each Send opens its own connection.
type Channel struct {
	host     string
	port     int
	mode     string
	from     *mail.Address
	domain   string // of From: the right-hand side of Message-IDs
	username string
	password string
	tls      *tls.Config
}

// Option changes a Channel made by New.
type Option func(*Channel)

// WithTLSConfig sets the TLS client configuration used to reach the
// server, for tests and for servers whose certificate a private CA
// issued (set RootCAs). ServerName defaults to the configured host and
// TLS 1.2 stays the minimum; certificates are always verified.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Channel) {
		if cfg == nil {
			return
		}
		t := cfg.Clone()
		if t.ServerName == "" {
			t.ServerName = c.host
		}
		t.MinVersion = max(t.MinVersion, tls.VersionTLS12)
		t.InsecureSkipVerify = false
		c.tls = t
	}
}

// New returns the channel "email" sending through the server cfg names.
// password is the content of cfg.PasswordFile; it is used only when
// cfg.Username is set.
func New(cfg config.NotifyEmail, password string, opts ...Option) (*Channel, error) {
	c := &Channel{host: strings.TrimSpace(cfg.Host), port: cfg.Port, mode: cfg.TLS, username: cfg.Username, password: password}
	if c.host == "" {
		return nil, errors.New("notify.email.host: expected the SMTP server's host name")
	}
	if _, _, err := net.SplitHostPort(c.host); err == nil && net.ParseIP(c.host) == nil {
		return nil, fmt.Errorf("notify.email.host: expected a host name without a port, got %q (the port goes in notify.email.port)", c.host)
	}
	defaultPort := map[string]int{"": 587, ModeSTARTTLS: 587, ModeTLS: 465, ModeNone: 25}
	p, ok := defaultPort[c.mode]
	if !ok {
		return nil, fmt.Errorf("notify.email.tls: expected starttls, tls or none, got %q", cfg.TLS)
	}
	if c.mode == "" {
		c.mode = ModeSTARTTLS
	}
	if c.port == 0 {
		c.port = p
	}
	if c.port < 1 || c.port > 65535 {
		return nil, fmt.Errorf("notify.email.port: expected a port, got %d", cfg.Port)
	}
	if c.mode == ModeNone && !isLoopback(c.host) {
		return nil, fmt.Errorf("notify.email.tls: none sends mail in clear and is allowed only to a relay on this machine "+
			"(localhost, 127.0.0.1 or ::1), not to %q: use starttls or tls", c.host)
	}
	if c.username != "" && c.mode == ModeNone {
		return nil, errors.New("notify.email.username: a password is never sent without TLS; use starttls or tls, or no username")
	}
	if c.username != "" && password == "" {
		return nil, fmt.Errorf("notify.email.password_file: expected the password of %q", c.username)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("notify.email.from: expected the sender's address, got %q", cfg.From)
	}
	c.from = from
	c.domain = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	c.tls = &tls.Config{ServerName: c.host, MinVersion: tls.VersionTLS12}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Name implements notify.Channel.
func (c *Channel) Name() string { return "email" }

// String says where the channel sends, for logs; never the password.
func (c *Channel) String() string { return fmt.Sprintf("email via %s (%s)", c.addr(), c.mode) }

// Send implements notify.Channel: one message to m.Target. A malformed
// address and a permanent (5xx) SMTP reply are Permanent errors; an
// unreachable server, a failed TLS handshake and a temporary (4xx) reply
// are tried again later.
func (c *Channel) Send(ctx context.Context, m *notify.Message) error {
	to, err := parseTarget(m.Target)
	if err != nil {
		return notify.Permanent(err)
	}
	msg, err := c.message(m, to)
	if err != nil {
		return notify.Permanent(fmt.Errorf("email %s: %w", m.ID, err))
	}
	ctx, cancel := context.WithTimeout(ctx, SendTimeout)
	defer cancel()
	client, err := c.client(ctx)
	if err != nil {
		return fmt.Errorf("email %s: %w", m.ID, err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		if ctx.Err() != nil {
			// The connection was closed under the conversation: say why.
			return fmt.Errorf("email %s to %s via %s: %w (%w)", m.ID, to.Address, c.addr(), context.Cause(ctx), err)
		}
		err = fmt.Errorf("email %s to %s via %s: %w", m.ID, to.Address, c.addr(), err)
		if code := replyCode(err); code >= 500 && code < 600 {
			return notify.Permanent(err)
		}
		return err
	}
	return nil
}

// parseTarget accepts exactly one address.
func parseTarget(s string) (*mail.Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("email to %q: expected one email address: %w", s, err)
	}
	return a, nil
}

func (c *Channel) addr() string { return net.JoinHostPort(c.host, fmt.Sprint(c.port)) }

// client makes a go-mail client for one conversation. Its connection is
// closed when ctx ends, so that a cancelled send stops at once rather
// than at the next command's timeout.
func (c *Channel) client(ctx context.Context) (*gomail.Client, error) {
	dial := func(dctx context.Context, network, _ string) (net.Conn, error) {
		d := &net.Dialer{Timeout: DialTimeout}
		var conn net.Conn
		var err error
		if c.mode == ModeTLS {
			conn, err = (&tls.Dialer{NetDialer: d, Config: c.tls}).DialContext(dctx, network, c.addr())
		} else {
			conn, err = d.DialContext(dctx, network, c.addr())
		}
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
	opts := []gomail.Option{gomail.WithTimeout(DialTimeout), gomail.WithDialContextFunc(dial), gomail.WithTLSConfig(c.tls)}
	switch c.mode {
	case ModeTLS:
		opts = append(opts, gomail.WithSSL())
	case ModeNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		// Mandatory, never opportunistic: a server (or a man in the
		// middle) that does not offer STARTTLS gets nothing.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if c.username != "" {
		opts = append(opts, gomail.WithSMTPAuthCustom(&auth{username: c.username, password: c.password, host: c.host}))
	}
	opts = append(opts, gomail.WithPort(c.port))
	return gomail.NewClient(c.host, opts...)
}

// auth is SMTP AUTH with PLAIN or LOGIN, whichever the server offers,
// only over TLS. One is made per conversation (LOGIN keeps state).
type auth struct {
	username, password, host string
	inner                    gosmtp.Auth
}

func (a *auth) Start(s *gosmtp.ServerInfo) (string, []byte, error) {
	if !s.TLS {
		return "", nil, errors.New("refusing to send the SMTP password without TLS")
	}
	switch {
	case slices.Contains(s.Auth, "PLAIN"):
		a.inner = gosmtp.PlainAuth("", a.username, a.password, a.host, false)
	case slices.Contains(s.Auth, "LOGIN"):
		a.inner = gosmtp.LoginAuth(a.username, a.password, a.host, false)
	default:
		return "", nil, fmt.Errorf("the server offers neither AUTH PLAIN nor LOGIN (it offers %q)", strings.Join(s.Auth, " "))
	}
	return a.inner.Start(s)
}

func (a *auth) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.inner.Next(fromServer, more)
}

// replyCode is the SMTP reply code err carries, or 0.
func replyCode(err error) int {
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() != 0 {
		return se.ErrorCode()
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// MessageID is the Message-ID of the email for delivery id, without the
// angle brackets: the same on every attempt, so that a repeat after a
// crash can be recognised (and dropped) by the receiving side.
func (c *Channel) MessageID(id string) string {
	return messageIDLocal(id) + "@" + c.domain
}

// messageIDLocal keeps an ID that is a valid dot-atom as it is and
// replaces any other by its hash, so that a header cannot be broken.
func messageIDLocal(id string) string {
	ok := id != "" && !strings.HasPrefix(id, ".") && !strings.HasSuffix(id, ".") && !strings.Contains(id, "..")
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+=", r)) {
			ok = false
			break
		}
	}
	if ok {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// message builds the email for m.
func (c *Channel) message(m *notify.Message, to *mail.Address) (*gomail.Msg, error) {
	text, html, err := render(m)
	if err != nil {
		return nil, err
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(c.from)
	msg.ToMailAddress(to)
	msg.Subject(oneLine(m.Title))
	msg.SetMessageIDWithValue(c.MessageID(m.ID))
	msg.SetDate()
	msg.SetUserAgent("Airlock")
	// RFC 3834: machines must not answer it (no out-of-office replies).
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Auto-Response-Suppress", "All")
	msg.SetGenHeader("X-Airlock-Event", oneLine(m.Type))
	msg.SetBodyString(gomail.TypeTextPlain, text)
	msg.AddAlternativeString(gomail.TypeTextHTML, html)
	return msg, nil
}

// oneLine folds line breaks so that a value stays one header line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
