package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"scorekeeper/app"
	"scorekeeper/config"
	"scorekeeper/config/testcerts"
	"scorekeeper/db/dbtest"
)

const testAPIKey = "sk-app-test-NEVER-LOGGED-5e1b"

// temporalEnv is the environment of a process dialing Temporal through
// config.FromEnv: SQLite, no Temporal CLI config file of the machine's
// (an empty one), and kv.
func temporalEnv(t *testing.T, kv map[string]string) config.Config {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "temporal.toml")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	env := map[string]string{"DATABASE_URL": dbtest.NewSQLiteURL(t), "TEMPORAL_CONFIG_FILE": empty}
	for k, v := range kv {
		env[k] = v
	}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	return cfg
}

// syncBuffer is a bytes.Buffer safe for the SDK's goroutines to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newApp runs app.New on cfg with a debug logger into logs, within
// timeout, and reports how long it took.
func newApp(t *testing.T, cfg config.Config, logs io.Writer, timeout time.Duration) (*app.App, time.Duration, error) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	a, err := app.New(ctx, cfg, log)
	if err == nil {
		t.Cleanup(a.Close)
	}
	return a, time.Since(start), err
}

// Ensure the client is dialed through the new path: TEMPORAL_ADDRESS, or
// a TEMPORAL_PROFILE of TEMPORAL_CONFIG_FILE, reaches the dev server; an
// API key sent in plaintext (TEMPORAL_TLS=false, which the dev server
// accepts and ignores) is never logged.
func TestTemporalClient_DevServer(t *testing.T) {
	addr := temporalAddress(t)
	profile := filepath.Join(t.TempDir(), "temporal.toml")
	require.NoError(t, os.WriteFile(profile, fmt.Appendf(nil, `
[profile.default]
address = "127.0.0.1:1"

[profile.local]
address = %q
namespace = "default"
api_key = %q
tls = { disabled = true }
`, addr, testAPIKey), 0o600))

	for name, kv := range map[string]map[string]string{
		"Address":        {"TEMPORAL_ADDRESS": addr},
		"AddressAPIKey":  {"TEMPORAL_ADDRESS": addr, "TEMPORAL_API_KEY": testAPIKey, "TEMPORAL_TLS": "false"},
		"Profile":        {"TEMPORAL_CONFIG_FILE": profile, "TEMPORAL_PROFILE": "local"},
		"EnvOverProfile": {"TEMPORAL_CONFIG_FILE": profile, "TEMPORAL_ADDRESS": addr, "TEMPORAL_TLS": "false"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := temporalEnv(t, kv)
			require.Equal(t, addr, cfg.TemporalAddress)
			var logs syncBuffer
			_, took, err := newApp(t, cfg, &logs, 30*time.Second)
			require.NoError(t, err)
			t.Logf("connected in %s", took)
			require.Contains(t, logs.String(), `msg="Temporal client connected" address=`+addr+" namespace=default connection.tls=false")
			require.NotContains(t, logs.String(), testAPIKey)
			require.NotContains(t, logs.String(), "NEVER-LOGGED")
		})
	}
}

// Ensure TLS against a plaintext frontend fails fast with an error that
// says TLS was asked for and why it failed, rather than hanging.
func TestTemporalClient_TLSAgainstPlaintext(t *testing.T) {
	addr := temporalAddress(t)
	cfg := temporalEnv(t, map[string]string{"TEMPORAL_ADDRESS": addr, "TEMPORAL_TLS": "true", "TEMPORAL_API_KEY": testAPIKey})
	var logs syncBuffer
	_, took, err := newApp(t, cfg, &logs, 30*time.Second)
	require.Error(t, err)
	t.Logf("failed in %s: %v", took, err)
	require.Less(t, took, 20*time.Second, "the dial has its own timeout")
	require.ErrorContains(t, err, "connect to Temporal at TEMPORAL_ADDRESS="+addr+" (TLS, API key): ")
	require.ErrorContains(t, err, "tls: first record does not look like a TLS handshake")
	require.NotContains(t, err.Error(), testAPIKey)
	require.NotContains(t, logs.String(), testAPIKey)
}

// tlsProxy terminates TLS (mTLS when cfg asks for client certificates) in
// front of the plaintext dev server, as a self-hosted deployment's
// frontend or load balancer does, and returns its address.
func tlsProxy(t *testing.T, target string, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer raw.Close()
				c := tls.Server(raw, cfg)
				if err := c.Handshake(); err != nil {
					// The alert is sent; read what the client still
					// writes so that it reads the alert rather than a
					// reset.
					_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
					_, _ = io.Copy(io.Discard, raw)
					return
				}
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() { _, _ = io.Copy(up, c); up.Close(); close(done) }()
				_, _ = io.Copy(c, up)
				c.Close()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}

// Ensure mTLS with a throwaway CA reaches Temporal through a TLS
// frontend that requires client certificates, and that each way of getting
// it wrong fails with the reason.
func TestTemporalClient_MTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t)
	server := ca.Issue(t, "temporal.test", testcerts.Options{DNSNames: []string{"temporal.test"}})
	worker := ca.Issue(t, "scorekeeper-worker", testcerts.Options{})
	caFile, _ := ca.Files(t, dir, "ca")
	certFile, keyFile := worker.Files(t, dir, "worker")
	otherCA := testcerts.NewCA(t)
	stranger := otherCA.Issue(t, "stranger", testcerts.Options{})
	strangerCert, strangerKey := stranger.Files(t, dir, "stranger")

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	addr := tlsProxy(t, temporalAddress(t), &tls.Config{
		Certificates: []tls.Certificate{server.TLS(t)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"}, // gRPC's ALPN
		MinVersion:   tls.VersionTLS12,
	})

	mtls := map[string]string{
		"TEMPORAL_ADDRESS":                 addr,
		"TEMPORAL_TLS_CLIENT_CERT_PATH":    certFile,
		"TEMPORAL_TLS_CLIENT_KEY_PATH":     keyFile,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH": caFile,
		"TEMPORAL_TLS_SERVER_NAME":         "temporal.test",
	}
	with := func(kv map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range mtls {
			out[k] = v
		}
		for k, v := range kv {
			if v == "" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}

	t.Run("OK", func(t *testing.T) {
		cfg := temporalEnv(t, mtls)
		var logs syncBuffer
		a, _, err := newApp(t, cfg, &logs, 30*time.Second)
		require.NoError(t, err)
		require.NotNil(t, a)
		require.Contains(t, logs.String(), "connection.tls=true connection.clientCert=true connection.customCA=true connection.serverName=temporal.test")
		// And a call through it, beyond the dial.
		c, err := client.DialContext(context.Background(), cfg.TemporalClientOptions())
		require.NoError(t, err)
		defer c.Close()
		_, err = c.CheckHealth(context.Background(), &client.CheckHealthRequest{})
		require.NoError(t, err)
	})
	t.Run("OKFromData", func(t *testing.T) {
		cfg := temporalEnv(t, with(map[string]string{
			"TEMPORAL_TLS_CLIENT_CERT_PATH": "", "TEMPORAL_TLS_CLIENT_KEY_PATH": "", "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "",
			"TEMPORAL_TLS_CLIENT_CERT_DATA": string(worker.CertPEM), "TEMPORAL_TLS_CLIENT_KEY_DATA": string(worker.KeyPEM), "TEMPORAL_TLS_SERVER_CA_CERT_DATA": string(ca.CertPEM),
		}))
		var logs syncBuffer
		_, _, err := newApp(t, cfg, &logs, 30*time.Second)
		require.NoError(t, err)
		require.NotContains(t, logs.String(), strings.Split(string(worker.KeyPEM), "\n")[1])
	})
	for _, tc := range []struct {
		name string
		kv   map[string]string
		want string // in the error, after the address
	}{
		{"NoClientCert", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "", "TEMPORAL_TLS_CLIENT_KEY_PATH": ""}, "tls: certificate required"},
		{"ClientCertOfAnotherCA", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": strangerCert, "TEMPORAL_TLS_CLIENT_KEY_PATH": strangerKey}, "tls: unknown certificate authority"},
		{"SystemRoots", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": ""}, "certificate signed by unknown authority"},
		{"WrongServerName", map[string]string{"TEMPORAL_TLS_SERVER_NAME": "other.test"}, "not other.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := temporalEnv(t, with(tc.kv))
			_, took, err := newApp(t, cfg, io.Discard, 30*time.Second)
			require.Error(t, err)
			t.Logf("failed in %s: %v", took, err)
			require.Less(t, took, 20*time.Second)
			require.ErrorContains(t, err, "connect to Temporal at TEMPORAL_ADDRESS="+addr+" ("+cfg.Temporal.String()+"): ")
			require.ErrorContains(t, err, tc.want)
			require.False(t, errors.Is(err, context.Canceled))
		})
	}
}
