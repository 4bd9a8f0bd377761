package email_test

import (
	"crypto/tls"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/internal/testenv"
	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/notify/email"
	"github.com/forewarn/forewarn/ticketing"
)

// parts returns the content types and bodies of a multipart/alternative
// message.
func parts(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	r := multipart.NewReader(m.Body, params["boundary"])
	out := map[string]string{}
	for {
		p, err := r.NextPart()
		if err != nil {
			break
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := p.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		out[ct] = b.String()
	}
	return out
}

// TestEmailIntegration sends through a real SMTP server (go-smtp) with a
// self-signed certificate: STARTTLS and implicit TLS, with AUTH PLAIN;
// temporary (4xx) refusals are retryable, permanent (5xx) ones are not.
func TestEmailIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real SMTP server on loopback")
	}
	msg := notify.Message{Key: "forewarn-7", Event: ticketing.EventTicketOpened, Subject: "Your heat pump's filter (#7)",
		Text: "Hello Ana,\nWhat we noticed: ...\n", HTML: "<p>Hello Ana,</p>"}
	to := ticketing.Channel{Type: "email", Address: "ana@example.com"}
	for _, tc := range []struct {
		name string
		mode string
	}{{"starttls", notify.TLSStartTLS}, {"implicit tls", notify.TLSImplicit}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.SMTP(t, testenv.SMTPOptions{ImplicitTLS: tc.mode == notify.TLSImplicit, Username: "forewarn", Password: "pw-0123456789"})
			ch := newMail(t, notify.SMTPConfig{Host: srv.Host, Port: srv.Port, From: "Forewarn <noreply@forewarn.test>", TLS: tc.mode,
				Username: "forewarn", Password: "pw-0123456789"}, &tls.Config{RootCAs: srv.CertPool, ServerName: srv.Host, MinVersion: tls.VersionTLS12})
			require.NoError(t, ch.Send(t.Context(), to, msg))
			got := srv.Messages()
			require.Len(t, got, 1)
			m := got[0]
			require.True(t, m.TLS, "sent encrypted")
			require.Equal(t, "forewarn", m.User)
			require.Equal(t, []string{"ana@example.com"}, m.To)
			require.Equal(t, "<forewarn-7@forewarn>", m.Header.Get("Message-ID"))
			require.Equal(t, "forewarn-7", m.Header.Get("X-Forewarn-Delivery"))
			require.Equal(t, "Your heat pump's filter (#7)", m.Header.Get("Subject"))
			p := parts(t, m.Raw)
			require.Contains(t, p["text/plain"], "What we noticed")
			require.Contains(t, p["text/html"], "<p>Hello Ana,</p>")

			srv.FailNext(451)
			de, ok := ch.Send(t.Context(), to, msg).(*notify.DeliveryError)
			require.True(t, ok)
			require.True(t, de.Retryable, "4xx is temporary")
			srv.FailNext(550)
			de, ok = ch.Send(t.Context(), to, msg).(*notify.DeliveryError)
			require.True(t, ok)
			require.False(t, de.Retryable, "5xx is permanent")
			require.Equal(t, 550, de.StatusCode)
			require.Len(t, srv.Messages(), 1)
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		srv := testenv.SMTP(t, testenv.SMTPOptions{Username: "forewarn", Password: "pw-0123456789"})
		ch := newMail(t, notify.SMTPConfig{Host: srv.Host, Port: srv.Port, From: "noreply@forewarn.test", TLS: notify.TLSStartTLS,
			Username: "forewarn", Password: "wrong"}, &tls.Config{RootCAs: srv.CertPool, ServerName: srv.Host, MinVersion: tls.VersionTLS12})
		require.Error(t, ch.Send(t.Context(), to, msg))
		require.Empty(t, srv.Messages())
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := testenv.SMTP(t, testenv.SMTPOptions{})
		ch := newMail(t, notify.SMTPConfig{Host: srv.Host, Port: srv.Port, From: "noreply@forewarn.test", TLS: notify.TLSStartTLS}, nil)
		require.Error(t, ch.Send(t.Context(), to, msg), "the system roots do not trust the test's certificate")
		require.Empty(t, srv.Messages())
	})
}

func newMail(t *testing.T, cfg notify.SMTPConfig, tlsConfig *tls.Config) *email.Channel {
	t.Helper()
	ch, err := email.New(cfg, tlsConfig)
	require.NoError(t, err)
	return ch
}

// TestCAFile trusts a private relay's certificate through smtp.ca_file.
func TestCAFileIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: real SMTP server on loopback")
	}
	srv := testenv.SMTP(t, testenv.SMTPOptions{})
	ch, err := email.New(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, From: "noreply@forewarn.test", TLS: notify.TLSStartTLS, CAFile: srv.CAFile}, nil)
	require.NoError(t, err)
	require.NoError(t, ch.Send(t.Context(), ticketing.Channel{Address: "ana@example.com"}, notify.Message{Key: "forewarn-1", Subject: "s", Text: "t"}))
	require.Len(t, srv.Messages(), 1)
	require.True(t, srv.Messages()[0].TLS)
	_, err = email.New(notify.SMTPConfig{CAFile: "/nonexistent.pem"}, nil)
	require.ErrorContains(t, err, "smtp.ca_file")
}
