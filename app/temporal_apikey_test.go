package app_test

import (
	"context"
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"scorekeeper/config/testcerts"
)

// apiKeyCall is one RPC the test frontend received: the method, the
// authorization metadata sent with it, and the TLS state of its connection
// (nil on plaintext).
type apiKeyCall struct {
	method        string
	authorization []string
	tls           *tls.ConnectionState
}

// apiKeyFrontend is a Temporal frontend as far as a client's dial goes
// (GetSystemInfo; every other method answers Unimplemented), over TLS with
// a certificate of a throwaway CA, recording every call it receives.
type apiKeyFrontend struct {
	workflowservice.UnimplementedWorkflowServiceServer

	mu    sync.Mutex
	calls []apiKeyCall
}

func (f *apiKeyFrontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{
		ServerVersion: "1.29.1",
		Capabilities: &workflowservice.GetSystemInfoResponse_Capabilities{
			SignalAndQueryHeader:            true,
			InternalErrorDifferentiation:    true,
			ActivityFailureIncludeHeartbeat: true,
			SupportsSchedules:               true,
			EncodedFailureAttributes:        true,
			UpsertMemo:                      true,
			EagerWorkflowStart:              true,
			SdkMetadata:                     true,
			CountGroupByExecutionStatus:     true,
		},
	}, nil
}

// record is the server's interceptor: it notes the call before the method
// (or Unimplemented) answers it.
func (f *apiKeyFrontend) record(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c := apiKeyCall{method: info.FullMethod}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		c.authorization = md.Get("authorization")
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			st := ti.State
			c.tls = &st
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	return handler(ctx, req)
}

func (f *apiKeyFrontend) received() []apiKeyCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// startAPIKeyFrontend serves an apiKeyFrontend on 127.0.0.1 with a
// certificate for that address issued by a new CA, and returns it, its
// address and the CA's PEM.
func startAPIKeyFrontend(t *testing.T) (*apiKeyFrontend, string, []byte) {
	t.Helper()
	ca := testcerts.NewCA(t)
	cert := ca.Issue(t, "temporal.test", testcerts.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	f := &apiKeyFrontend{}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert.TLS(t)}, MinVersion: tls.VersionTLS12})),
		grpc.UnaryInterceptor(f.record),
	)
	workflowservice.RegisterWorkflowServiceServer(srv, f)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return f, ln.Addr().String(), ca.CertPEM
}

// Ensure that with only TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and
// TEMPORAL_API_KEY set, as for Temporal Cloud, the client dials with TLS and
// sends the key as "authorization: Bearer <key>" on its calls, through the
// real path (app.New, which dials as every process does); the key is never
// logged.
//
// Temporal Cloud's certificate chains to a public CA, which the system's
// roots verify: those three variables are all a Cloud deployment sets. The
// frontend here has a certificate of a throwaway CA, so the test adds
// TEMPORAL_TLS_SERVER_CA_CERT_DATA to trust it (the same TLS path, another
// root); without it the dial refuses the certificate before any call, the
// key unsent (SystemRoots below).
func TestTemporalClient_APIKey(t *testing.T) {
	const key = "tmprl-cloud-apikey-NEVER-LOGGED-7c41"
	const ns = "scorekeeper.a1b2c"

	t.Run("TLSAndBearer", func(t *testing.T) {
		f, addr, caPEM := startAPIKeyFrontend(t)
		cfg := temporalEnv(t, map[string]string{
			"TEMPORAL_ADDRESS":                 addr,
			"TEMPORAL_NAMESPACE":               ns,
			"TEMPORAL_API_KEY":                 key,
			"TEMPORAL_TLS_SERVER_CA_CERT_DATA": string(caPEM),
		})
		require.Equal(t, addr, cfg.TemporalAddress)
		require.Equal(t, ns, cfg.TemporalNamespace)
		require.True(t, cfg.Temporal.TLS, "TLS")
		require.True(t, cfg.Temporal.APIKey, "API key")
		require.True(t, cfg.Temporal.CustomCA)
		require.False(t, cfg.Temporal.ClientCert, "an API key, no client certificate")

		var logs syncBuffer
		_, took, err := newApp(t, cfg, &logs, 30*time.Second)
		require.NoError(t, err, "dial the TLS frontend with the API key")
		t.Logf("connected in %s", took)

		calls := f.received()
		require.NotEmpty(t, calls, "the dial reached the frontend")
		require.True(t, slices.ContainsFunc(calls, func(c apiKeyCall) bool {
			return c.method == workflowservice.WorkflowService_GetSystemInfo_FullMethodName
		}), "the dial asks GetSystemInfo: %+v", calls)
		for _, c := range calls {
			require.Equal(t, []string{"Bearer " + key}, c.authorization, "%s: the authorization header", c.method)
			require.NotNil(t, c.tls, "%s: over TLS", c.method)
			require.True(t, c.tls.HandshakeComplete, "%s: TLS handshake", c.method)
			require.GreaterOrEqual(t, c.tls.Version, uint16(tls.VersionTLS12), "%s: TLS version", c.method)
			require.Equal(t, "h2", c.tls.NegotiatedProtocol, "%s: gRPC over HTTP/2 (ALPN)", c.method)
		}

		out := logs.String()
		require.Contains(t, out, `msg="Temporal client connected" address=`+addr+" namespace="+ns+" connection.tls=true")
		require.Contains(t, out, "connection.apiKey=true")
		require.NotContains(t, out, key)
		require.NotContains(t, out, "NEVER-LOGGED")
	})

	// The three variables alone: TLS against the system's roots, which do
	// not know the throwaway CA, so the handshake fails and no call (and no
	// key) reaches the server.
	t.Run("SystemRoots", func(t *testing.T) {
		f, addr, _ := startAPIKeyFrontend(t)
		cfg := temporalEnv(t, map[string]string{
			"TEMPORAL_ADDRESS":   addr,
			"TEMPORAL_NAMESPACE": ns,
			"TEMPORAL_API_KEY":   key,
		})
		require.True(t, cfg.Temporal.TLS, "an API key alone turns TLS on")
		require.False(t, cfg.Temporal.CustomCA, "verified against the system's roots")

		var logs syncBuffer
		_, took, err := newApp(t, cfg, &logs, 30*time.Second)
		require.Error(t, err)
		t.Logf("failed in %s: %v", took, err)
		require.Less(t, took, 20*time.Second, "the dial has its own timeout")
		require.ErrorContains(t, err, "connect to Temporal at TEMPORAL_ADDRESS="+addr+" (TLS, API key): ")
		require.ErrorContains(t, err, "certificate signed by unknown authority")
		require.Empty(t, f.received(), "no call over an unverified connection")
		require.NotContains(t, err.Error(), key)
		require.False(t, strings.Contains(logs.String(), key), "the key is never logged")
	})
}
