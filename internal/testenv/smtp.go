package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPMessage is one message an SMTPServer accepted.
type SMTPMessage struct {
	From     string
	To       []string
	User     string // the AUTH PLAIN user, "" without AUTH
	TLS      bool   // the session was encrypted (STARTTLS or implicit)
	Raw      []byte // the message as received (headers and body)
	Header   mail.Header
	Received time.Time
}

// SMTPOptions choose how an SMTPServer listens.
type SMTPOptions struct {
	// ImplicitTLS serves TLS from the first byte (port-465 style); else
	// the server offers STARTTLS on a plain connection.
	ImplicitTLS bool
	// Username and Password, when set, are required (AUTH PLAIN, over TLS only).
	Username, Password string
}

// An SMTPServer is a real SMTP server (github.com/emersion/go-smtp) on a
// free loopback port, with a self-signed certificate made for the test,
// that records what it accepts and can refuse on demand.
type SMTPServer struct {
	Host     string // "127.0.0.1"
	Port     int
	CertPool *x509.CertPool // trusts the server's certificate; for the client's tls.Config (ServerName "127.0.0.1")
	CAFile   string         // the same certificate as a PEM file (notify.smtp.ca_file)

	opts SMTPOptions
	srv  *smtp.Server

	mu       sync.Mutex
	msgs     []SMTPMessage
	failures []error // errors to answer the next DATA commands with, in order
}

// SMTP starts an SMTP server for t on 127.0.0.1 and stops it in t.Cleanup.
func SMTP(t testing.TB, opts SMTPOptions) *SMTPServer {
	t.Helper()
	cert, pool := selfSigned(t)
	s := &SMTPServer{Host: loopback, CertPool: pool, opts: opts, CAFile: filepath.Join(t.TempDir(), "smtp-ca.pem")}
	if err := os.WriteFile(s.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatalf("testenv: write %s: %v", s.CAFile, err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{s: s, conn: c}, nil
	}))
	srv.Domain = "forewarn.test"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 10 << 20
	var ln net.Listener
	var err error
	if opts.ImplicitTLS {
		ln, err = tls.Listen("tcp", hostPort(0), srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", hostPort(0))
	}
	if err != nil {
		t.Fatalf("testenv: smtp listen: %v", err)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	s.srv = srv
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	t.Logf("testenv: smtp server on %s:%d (implicit TLS %v)", s.Host, s.Port, opts.ImplicitTLS)
	return s
}

// FailNext makes the next len(codes) messages be refused at DATA with
// these SMTP codes (4xx temporary, 5xx permanent).
func (s *SMTPServer) FailNext(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range codes {
		s.failures = append(s.failures, &smtp.SMTPError{Code: c, EnhancedCode: smtp.EnhancedCode{c / 100, 0, 0}, Message: "refused by the test"})
	}
}

// Messages returns what the server accepted so far.
func (s *SMTPServer) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.msgs...)
}

type smtpSession struct {
	s    *SMTPServer
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (x *smtpSession) AuthMechanisms() []string {
	if x.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != x.s.opts.Username || pass != x.s.opts.Password {
			return errors.New("invalid credentials")
		}
		x.user = user
		return nil
	}), nil
}

func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.opts.Username != "" && x.user == "" {
		return smtp.ErrAuthRequired
	}
	x.from = from
	return nil
}

func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}

func (x *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if len(x.s.failures) > 0 {
		err := x.s.failures[0]
		x.s.failures = x.s.failures[1:]
		return err
	}
	_, isTLS := x.conn.TLSConnectionState()
	m := SMTPMessage{From: x.from, To: append([]string(nil), x.to...), User: x.user, TLS: isTLS, Raw: raw, Received: time.Now()}
	if pm, err := mail.ReadMessage(strings.NewReader(string(raw))); err == nil {
		m.Header = pm.Header
	}
	x.s.msgs = append(x.s.msgs, m)
	return nil
}

func (x *smtpSession) Reset()        { x.from, x.to = "", nil }
func (x *smtpSession) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 valid for the test.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "forewarn test smtp"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP(loopback)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testenv: certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
