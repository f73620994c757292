// Package brokertls owns the dock's and central's TLS settings for the MQTT broker, built
// from CA, certificate and key files; the key is refused unless it is the program's alone.
package brokertls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"dock/queue/secret"
)

// Config builds the broker TLS settings from CA, certificate and key files; nil when
// none are set (plain TCP on a trusted link or loopback).
func Config(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca %s: no certificates", caFile)
		}
		c.RootCAs = pool
	}
	if certFile != "" {
		certPEM, err := os.ReadFile(certFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		// The key must be the agent's alone (secret.ReadFile): mode 0600, its owner.
		keyPEM, err := secret.ReadFile("tls key (key_file)", keyFile)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
