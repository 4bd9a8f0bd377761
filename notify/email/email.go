// Package email delivers notifications over SMTP (STARTTLS, implicit TLS,
// or plain on loopback relays) with github.com/wneessen/go-mail: a
// multipart/alternative message with a plain-text and an HTML part, its
// Message-ID derived from the idempotency key (so a receiving system can
// drop a redelivery) and the key in X-Forewarn-Delivery.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/wneessen/go-mail"

	"github.com/forewarn/forewarn/notify"
	"github.com/forewarn/forewarn/ticketing"
)

// Channel sends notifications by e-mail.
type Channel struct {
	cfg notify.SMTPConfig
	tls *tls.Config
}

// New returns a Channel for cfg; tlsConfig nil means the system roots
// (plus cfg.CAFile's certificates) and cfg.Host as the server name.
func New(cfg notify.SMTPConfig, tlsConfig *tls.Config) (*Channel, error) {
	if tlsConfig == nil {
		tlsConfig = &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("smtp.ca_file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("smtp.ca_file: %s holds no PEM certificate", cfg.CAFile)
			}
			tlsConfig.RootCAs = pool
		}
	}
	return &Channel{cfg: cfg, tls: tlsConfig}, nil
}

func (c *Channel) client() (*mail.Client, error) {
	opts := []mail.Option{mail.WithPort(c.cfg.Port), mail.WithTLSConfig(c.tls), mail.WithHELO("forewarn")}
	switch c.cfg.TLS {
	case notify.TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case notify.TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if c.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(c.cfg.Username), mail.WithPassword(c.cfg.Password))
	}
	return mail.NewClient(c.cfg.Host, opts...)
}

// Send mails m to to.Address.
func (c *Channel) Send(ctx context.Context, to ticketing.Channel, m notify.Message) error {
	msg := mail.NewMsg()
	if err := msg.From(c.cfg.From); err != nil {
		return notify.Permanent(fmt.Errorf("from %q: %w", c.cfg.From, err), 0)
	}
	if err := msg.To(to.Address); err != nil {
		return notify.Permanent(fmt.Errorf("to %q: %w", to.Address, err), 0)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.Key + "@forewarn")
	msg.SetGenHeader("X-Forewarn-Delivery", m.Key)
	msg.SetGenHeader("X-Forewarn-Event", m.Event)
	msg.SetUserAgent("Forewarn")
	msg.SetDate()
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	}
	cl, err := c.client()
	if err != nil {
		return notify.Permanent(fmt.Errorf("smtp client: %w", err), 0)
	}
	if err := cl.DialAndSendWithContext(ctx, msg); err != nil {
		var se *mail.SendError
		if errors.As(err, &se) {
			code := se.ErrorCode()
			if !se.IsTemp() && code >= 500 {
				return notify.Permanent(fmt.Errorf("smtp %s:%d: %w", c.cfg.Host, c.cfg.Port, err), code)
			}
			return notify.Retryable(fmt.Errorf("smtp %s:%d: %w", c.cfg.Host, c.cfg.Port, err), code, 0)
		}
		return notify.Retryable(fmt.Errorf("smtp %s:%d: %w", c.cfg.Host, c.cfg.Port, err), 0, 0)
	}
	return nil
}
