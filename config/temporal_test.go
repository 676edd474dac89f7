package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper/config"
	"scorekeeper/config/testcerts"
)

func TestMain(m *testing.M) {
	// Never the machine's own Temporal CLI config: a path that is not there.
	dir, err := os.MkdirTemp("", "config-test")
	if err != nil {
		panic(err)
	}
	config.SetDefaultTemporalConfigFile(filepath.Join(dir, "temporalio", "temporal.toml"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The secrets of these tests: none may reach an error, a log line or a
// dump of the Config.
const (
	apiKey     = "sk-test-NEVER-SHOWN-8f2c"
	fileAPIKey = "sk-file-NEVER-SHOWN-1a7d"
)

// certs are the throwaway certificates of one test, in files under dir.
type certs struct {
	dir                 string
	ca, client, other   testcerts.Pair
	caFile              string
	certFile, keyFile   string
	otherCert, otherKey string // another client's
	expiredC, expiredK  string
	garbage, missing    string
}

func newCerts(t *testing.T) certs {
	t.Helper()
	dir := t.TempDir()
	c := certs{dir: dir, ca: testcerts.NewCA(t)}
	c.client = c.ca.Issue(t, "scorekeeper-worker", testcerts.Options{})
	c.other = c.ca.Issue(t, "someone-else", testcerts.Options{})
	expired := c.ca.Issue(t, "expired", testcerts.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	c.caFile, _ = c.ca.Files(t, dir, "ca")
	c.certFile, c.keyFile = c.client.Files(t, dir, "client")
	c.otherCert, c.otherKey = c.other.Files(t, dir, "other")
	c.expiredC, c.expiredK = expired.Files(t, dir, "expired")
	c.garbage = filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(c.garbage, []byte("not a certificate\n"), 0o600))
	c.missing = filepath.Join(dir, "missing.pem")
	return c
}

// writeTOML writes a Temporal CLI config file and returns its path.
func writeTOML(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "temporal.toml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestTemporal_Defaults(t *testing.T) {
	c, err := config.FromEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:7233", c.TemporalAddress)
	require.Equal(t, "default", c.TemporalNamespace)
	require.Equal(t, "scorekeeper", c.TemporalTaskQueue)
	require.Zero(t, c.Temporal, "plaintext, no credentials")
	opts := c.TemporalClientOptions()
	require.Equal(t, "127.0.0.1:7233", opts.HostPort)
	require.Equal(t, "default", opts.Namespace)
	require.Nil(t, opts.Credentials)
	require.Nil(t, opts.ConnectionOptions.TLS)
	require.Equal(t, "plaintext", c.Temporal.String())
	// Defaults() needs no loading: the zero connection is the default one.
	require.Equal(t, config.Defaults().TemporalClientOptions(), opts)
}

// Ensure each variable, alone or with others, gives the connection it says.
func TestTemporal_Variables(t *testing.T) {
	cs := newCerts(t)
	for _, tc := range []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c config.Config)
	}{
		{"AddressAndNamespace", map[string]string{"TEMPORAL_ADDRESS": "temporal.internal:7233", "TEMPORAL_NAMESPACE": "prod", "TEMPORAL_TASK_QUEUE": "q"}, func(t *testing.T, c config.Config) {
			require.Equal(t, "temporal.internal:7233", c.TemporalClientOptions().HostPort)
			require.Equal(t, "prod", c.TemporalClientOptions().Namespace)
			require.Equal(t, "q", c.TemporalTaskQueue)
			require.False(t, c.Temporal.TLS)
		}},
		{"APIKeyTurnsTLSOn", map[string]string{"TEMPORAL_API_KEY": apiKey}, func(t *testing.T, c config.Config) {
			opts := c.TemporalClientOptions()
			require.NotNil(t, opts.Credentials)
			require.NotNil(t, opts.ConnectionOptions.TLS, "TLS by default with an API key, as in the CLI")
			require.True(t, c.Temporal.TLS)
			require.True(t, c.Temporal.APIKey)
			require.Equal(t, "TLS, API key", c.Temporal.String())
		}},
		{"APIKeyTrimmed", map[string]string{"TEMPORAL_API_KEY": apiKey + "\n"}, func(t *testing.T, c config.Config) {
			require.True(t, c.Temporal.APIKey)
		}},
		{"APIKeyTLSOff", map[string]string{"TEMPORAL_API_KEY": apiKey, "TEMPORAL_TLS": "false"}, func(t *testing.T, c config.Config) {
			opts := c.TemporalClientOptions()
			require.NotNil(t, opts.Credentials)
			require.Nil(t, opts.ConnectionOptions.TLS)
			require.True(t, opts.ConnectionOptions.TLSDisabled)
			require.False(t, c.Temporal.TLS)
		}},
		{"TLSSystemRoots", map[string]string{"TEMPORAL_TLS": "true"}, func(t *testing.T, c config.Config) {
			tls := c.TemporalClientOptions().ConnectionOptions.TLS
			require.NotNil(t, tls)
			require.Nil(t, tls.RootCAs, "the system's roots")
			require.Empty(t, tls.Certificates)
			require.Equal(t, config.TemporalClient{TLS: true}, c.Temporal.Described())
		}},
		{"TLSOne", map[string]string{"TEMPORAL_TLS": "1"}, func(t *testing.T, c config.Config) { require.True(t, c.Temporal.TLS) }},
		{"TLSUpper", map[string]string{"TEMPORAL_TLS": "TRUE"}, func(t *testing.T, c config.Config) { require.True(t, c.Temporal.TLS) }},
		{"TLSFalse", map[string]string{"TEMPORAL_TLS": "0"}, func(t *testing.T, c config.Config) {
			require.False(t, c.Temporal.TLS)
			require.True(t, c.TemporalClientOptions().ConnectionOptions.TLSDisabled)
		}},
		{"MTLSPaths", map[string]string{
			"TEMPORAL_TLS_CLIENT_CERT_PATH":    cs.certFile,
			"TEMPORAL_TLS_CLIENT_KEY_PATH":     cs.keyFile,
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH": cs.caFile,
			"TEMPORAL_TLS_SERVER_NAME":         "temporal.internal",
		}, func(t *testing.T, c config.Config) {
			tls := c.TemporalClientOptions().ConnectionOptions.TLS
			require.NotNil(t, tls)
			require.Len(t, tls.Certificates, 1)
			require.Equal(t, cs.client.Cert.Raw, tls.Certificates[0].Certificate[0])
			require.NotNil(t, tls.RootCAs)
			require.Equal(t, "temporal.internal", tls.ServerName)
			require.Equal(t, config.TemporalClient{TLS: true, ClientCert: true, CustomCA: true, ServerName: "temporal.internal"}, c.Temporal.Described())
			require.Equal(t, "TLS, server name temporal.internal, custom CA, client certificate", c.Temporal.String())
		}},
		{"MTLSData", map[string]string{
			"TEMPORAL_TLS_CLIENT_CERT_DATA":    string(cs.client.CertPEM),
			"TEMPORAL_TLS_CLIENT_KEY_DATA":     string(cs.client.KeyPEM),
			"TEMPORAL_TLS_SERVER_CA_CERT_DATA": string(cs.ca.CertPEM),
		}, func(t *testing.T, c config.Config) {
			tls := c.TemporalClientOptions().ConnectionOptions.TLS
			require.Len(t, tls.Certificates, 1)
			require.NotNil(t, tls.RootCAs)
			require.True(t, c.Temporal.ClientCert)
		}},
		{"CAOnly", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": cs.caFile}, func(t *testing.T, c config.Config) {
			require.Equal(t, config.TemporalClient{TLS: true, CustomCA: true}, c.Temporal.Described(), "a TLS setting turns TLS on")
		}},
		{"NoHostVerification", map[string]string{"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION": "true"}, func(t *testing.T, c config.Config) {
			require.True(t, c.TemporalClientOptions().ConnectionOptions.TLS.InsecureSkipVerify)
			require.Equal(t, "TLS, host verification off", c.Temporal.String(), "said, for it matters")
		}},
		{"Authority", map[string]string{"TEMPORAL_CLIENT_AUTHORITY": "temporal.internal"}, func(t *testing.T, c config.Config) {
			require.Equal(t, "temporal.internal", c.TemporalClientOptions().ConnectionOptions.Authority)
		}},
		{"CodecIgnored", map[string]string{"TEMPORAL_CODEC_ENDPOINT": "http://codec.example"}, func(t *testing.T, c config.Config) {
			require.Nil(t, c.TemporalClientOptions().DataConverter, "the worker's own data converter stays")
		}},
		{"CertAndAPIKey", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile, "TEMPORAL_API_KEY": apiKey}, func(t *testing.T, c config.Config) {
			require.True(t, c.Temporal.ClientCert)
			require.True(t, c.Temporal.APIKey)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.FromEnv(env(tc.env))
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

// Ensure every bad value fails the start with one line naming where it is,
// and never shows a secret.
func TestTemporal_Errors(t *testing.T) {
	cs := newCerts(t)
	file := writeTOML(t, `
[profile.default]
address = "127.0.0.1:7233"

[profile.prod]
address = "prod.example:7233"
api_key = "`+fileAPIKey+`"

[profile.badaddr]
address = "no-port"

[profile.offwithcert]
tls = { disabled = true, client_cert_path = "`+cs.certFile+`", client_key_path = "`+cs.keyFile+`" }

[profile.keyonly]
tls = { client_key_path = "`+cs.keyFile+`" }
`)
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // every one in the error
	}{
		{"Address", map[string]string{"TEMPORAL_ADDRESS": "7233"}, []string{`TEMPORAL_ADDRESS="7233": want host:port`}},
		{"AddressPort", map[string]string{"TEMPORAL_ADDRESS": "h:99999"}, []string{`TEMPORAL_ADDRESS="h:99999": port`}},
		{"TLSValue", map[string]string{"TEMPORAL_TLS": "yes"}, []string{`TEMPORAL_TLS="yes": want true or false`}},
		{"HostVerificationValue", map[string]string{"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION": "maybe"}, []string{"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"}},
		{"KeyWithoutCert", map[string]string{"TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile}, []string{"TEMPORAL_TLS_CLIENT_KEY_PATH=", "needs its certificate"}},
		{"KeyDataWithoutCert", map[string]string{"TEMPORAL_TLS_CLIENT_KEY_DATA": string(cs.client.KeyPEM)}, []string{"TEMPORAL_TLS_CLIENT_KEY_DATA: a client key needs its certificate"}},
		{"CertWithoutKey", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile}, []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=", "needs its key"}},
		{"CertUnreadable", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.missing, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile}, []string{fmt.Sprintf("TEMPORAL_TLS_CLIENT_CERT_PATH=%q: cannot read it: no such file or directory", cs.missing)}},
		{"KeyUnreadable", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.dir}, []string{"TEMPORAL_TLS_CLIENT_KEY_PATH=", "cannot read it: is a directory"}},
		{"CertNotPEM", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.garbage, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile}, []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=", "want a PEM certificate"}},
		{"CertIsAKey", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.keyFile, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile}, []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=", "want a PEM certificate"}},
		{"CertDataNotPEM", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_DATA": "MIIB" + apiKey, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile}, []string{"TEMPORAL_TLS_CLIENT_CERT_DATA: want a PEM certificate"}},
		{"KeyNotPEM", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.garbage}, []string{"TEMPORAL_TLS_CLIENT_KEY_PATH=", "want a PEM private key"}},
		{"KeyDataNotPEM", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile, "TEMPORAL_TLS_CLIENT_KEY_DATA": apiKey}, []string{"TEMPORAL_TLS_CLIENT_KEY_DATA: want a PEM private key"}},
		{"KeyOfAnotherCert", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.otherKey}, []string{"TEMPORAL_TLS_CLIENT_KEY_PATH=", "not the key of TEMPORAL_TLS_CLIENT_CERT_PATH=", "does not match"}},
		{"KeyDataOfAnotherCert", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_DATA": string(cs.client.CertPEM), "TEMPORAL_TLS_CLIENT_KEY_DATA": string(cs.other.KeyPEM)}, []string{"TEMPORAL_TLS_CLIENT_KEY_DATA: not the key of TEMPORAL_TLS_CLIENT_CERT_DATA"}},
		{"CertExpired", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.expiredC, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.expiredK}, []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=", "expired on"}},
		{"CertPathAndData", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile, "TEMPORAL_TLS_CLIENT_CERT_DATA": string(cs.client.CertPEM), "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile}, []string{"TEMPORAL_TLS_CLIENT_CERT_PATH: and TEMPORAL_TLS_CLIENT_CERT_DATA are both set"}},
		{"KeyPathAndData", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile, "TEMPORAL_TLS_CLIENT_KEY_DATA": string(cs.client.KeyPEM)}, []string{"TEMPORAL_TLS_CLIENT_KEY_PATH: and TEMPORAL_TLS_CLIENT_KEY_DATA are both set"}},
		{"CAUnreadable", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": cs.missing}, []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH=", "no such file"}},
		{"CANotPEM", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": cs.garbage}, []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH=", "want a PEM certificate"}},
		{"CADataNotPEM", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_DATA": "junk"}, []string{"TEMPORAL_TLS_SERVER_CA_CERT_DATA: want a PEM certificate"}},
		{"CAPathAndData", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": cs.caFile, "TEMPORAL_TLS_SERVER_CA_CERT_DATA": string(cs.ca.CertPEM)}, []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH: and TEMPORAL_TLS_SERVER_CA_CERT_DATA are both set"}},
		{"TLSOffWithCert", map[string]string{"TEMPORAL_TLS": "false", "TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile}, []string{"TEMPORAL_TLS: turns TLS off, but TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH are set"}},
		{"TLSOffWithServerName", map[string]string{"TEMPORAL_TLS": "false", "TEMPORAL_TLS_SERVER_NAME": "x"}, []string{"TEMPORAL_TLS: turns TLS off, but TEMPORAL_TLS_SERVER_NAME is set"}},
		{"APIKeyWhitespace", map[string]string{"TEMPORAL_API_KEY": "sk-test NEVER-SHOWN"}, []string{"TEMPORAL_API_KEY: contains whitespace"}},
		{"APIKeyOnlyWhitespace", map[string]string{"TEMPORAL_API_KEY": " \n"}, []string{"TEMPORAL_API_KEY: is only whitespace"}},
		{"ConfigFileMissing", map[string]string{"TEMPORAL_CONFIG_FILE": cs.missing}, []string{fmt.Sprintf("TEMPORAL_CONFIG_FILE=%q: cannot read it: no such file or directory", cs.missing)}},
		{"ConfigFileIsADirectory", map[string]string{"TEMPORAL_CONFIG_FILE": cs.dir}, []string{"TEMPORAL_CONFIG_FILE=", "cannot read it: is a directory"}},
		{"ConfigFileNotTOML", map[string]string{"TEMPORAL_CONFIG_FILE": writeTOML(t, "[profile.default]\naddress = \"x:1\"\napi_key = "+apiKey+"\n")}, []string{"TEMPORAL_CONFIG_FILE=", "not valid TOML (line 3, key profile.default.api_key)"}},
		{"ConfigFileWrongType", map[string]string{"TEMPORAL_CONFIG_FILE": writeTOML(t, "[profile.default]\napi_key = 5\n")}, []string{"TEMPORAL_CONFIG_FILE=", `not a Temporal client config: line 2 (last key "profile.default.api_key"): incompatible types`}},
		{"ProfileUnknown", map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "staging"}, []string{`TEMPORAL_PROFILE="staging": no such profile in TEMPORAL_CONFIG_FILE=` + file + " (it has: badaddr, default, keyonly, offwithcert, prod)"}},
		{"ProfileWithoutFile", map[string]string{"TEMPORAL_PROFILE": "prod"}, []string{`TEMPORAL_PROFILE="prod": no config file to read it from (TEMPORAL_CONFIG_FILE is unset and `}},
		{"ProfileAddress", map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "badaddr"}, []string{`TEMPORAL_CONFIG_FILE=` + file + ` [profile.badaddr] address="no-port": want host:port`}},
		{"ProfileTLSOffWithCert", map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "offwithcert"}, []string{`TEMPORAL_CONFIG_FILE=` + file + ` [profile.offwithcert] tls.disabled: turns TLS off, but tls.client_cert_path, tls.client_key_path are set`}},
		{"ProfileKeyWithoutCert", map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "keyonly"}, []string{`TEMPORAL_CONFIG_FILE=` + file + ` [profile.keyonly] tls.client_key_path="` + cs.keyFile + `": a client key needs its certificate`}},
		{"EnvCertOverProfileDisabled", map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "offwithcert", "TEMPORAL_TLS_SERVER_NAME": "x"}, []string{"[profile.offwithcert] tls.disabled: turns TLS off, but tls.client_cert_path, tls.client_key_path, TEMPORAL_TLS_SERVER_NAME are set"}},
		{"ProfileAPIKeyWhitespace", map[string]string{"TEMPORAL_CONFIG_FILE": writeTOML(t, "[profile.default]\napi_key = \"a "+fileAPIKey+"\"\n")}, []string{"[profile.default] api_key: contains whitespace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.FromEnv(env(tc.env))
			require.Error(t, err)
			msg := err.Error()
			for _, w := range tc.want {
				require.Contains(t, msg, w)
			}
			requireNoSecret(t, msg, cs)
			require.NotContains(t, msg, "\n", "one line")
		})
	}
	t.Run("ReportedWithTheOthers", func(t *testing.T) {
		_, err := config.FromEnv(env(map[string]string{"TEMPORAL_TLS": "yes", "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile, "LOG_FORMAT": "xml"}))
		require.ErrorContains(t, err, "TEMPORAL_TLS=")
		require.ErrorContains(t, err, "TEMPORAL_TLS_CLIENT_KEY_PATH=")
		require.ErrorContains(t, err, "LOG_FORMAT")
	})
}

// requireNoSecret fails when s shows the API keys or a private key.
func requireNoSecret(t *testing.T, s string, cs certs) {
	t.Helper()
	for _, secret := range []string{apiKey, fileAPIKey, "NEVER-SHOWN", "-----BEGIN PRIVATE KEY"} {
		require.NotContains(t, s, secret)
	}
	for _, k := range []testcerts.Pair{cs.client, cs.other} {
		body := strings.Split(string(k.KeyPEM), "\n")[1] // the first line of base64
		require.NotContains(t, s, body)
	}
}

// Ensure TEMPORAL_PROFILE picks a profile of TEMPORAL_CONFIG_FILE, and the
// variables override it, as in the CLI.
func TestTemporal_Profiles(t *testing.T) {
	cs := newCerts(t)
	file := writeTOML(t, fmt.Sprintf(`
[profile.default]
address = "localhost:7233"
namespace = "dev"

[profile.cloud]
address = "scorekeeper.a1b2c.tmprl.cloud:7233"
namespace = "scorekeeper.a1b2c"
api_key = %q

[profile.selfhosted]
address = "temporal.internal:7233"
namespace = "scorekeeper"
[profile.selfhosted.tls]
client_cert_path = %q
client_key_path = %q
server_ca_cert_path = %q
server_name = "temporal.internal"
[profile.selfhosted.grpc_meta]
x-tenant = "scorekeeper"

[profile.inline]
address = "temporal.internal:7233"
[profile.inline.tls]
client_cert_data = '''%s'''
client_key_data = '''%s'''
`, fileAPIKey, cs.certFile, cs.keyFile, cs.caFile, cs.client.CertPEM, cs.client.KeyPEM))

	load := func(t *testing.T, kv map[string]string) config.Config {
		t.Helper()
		kv["TEMPORAL_CONFIG_FILE"] = file
		c, err := config.FromEnv(env(kv))
		require.NoError(t, err)
		return c
	}
	t.Run("DefaultProfile", func(t *testing.T) {
		c := load(t, map[string]string{})
		require.Equal(t, "localhost:7233", c.TemporalAddress)
		require.Equal(t, "dev", c.TemporalNamespace)
		require.Equal(t, config.TemporalClient{ConfigFile: file, Profile: "default"}, c.Temporal.Described())
	})
	t.Run("Cloud", func(t *testing.T) {
		c := load(t, map[string]string{"TEMPORAL_PROFILE": "cloud"})
		require.Equal(t, "scorekeeper.a1b2c.tmprl.cloud:7233", c.TemporalAddress)
		require.Equal(t, "scorekeeper.a1b2c", c.TemporalNamespace)
		require.True(t, c.Temporal.APIKey)
		require.True(t, c.Temporal.TLS)
		require.NotNil(t, c.TemporalClientOptions().Credentials)
		require.Equal(t, `TLS, API key, profile "cloud" of `+file, c.Temporal.String())
	})
	t.Run("SelfHostedMTLS", func(t *testing.T) {
		c := load(t, map[string]string{"TEMPORAL_PROFILE": "selfhosted"})
		opts := c.TemporalClientOptions()
		require.Equal(t, "temporal.internal:7233", opts.HostPort)
		require.Len(t, opts.ConnectionOptions.TLS.Certificates, 1)
		require.NotNil(t, opts.ConnectionOptions.TLS.RootCAs)
		require.Equal(t, "temporal.internal", opts.ConnectionOptions.TLS.ServerName)
		require.False(t, c.Temporal.APIKey)
		require.NotNil(t, opts.HeadersProvider, "the profile's grpc_meta")
		h, err := opts.HeadersProvider.GetHeaders(context.Background())
		require.NoError(t, err)
		require.Equal(t, map[string]string{"x-tenant": "scorekeeper"}, h)
	})
	t.Run("InlinePEM", func(t *testing.T) {
		c := load(t, map[string]string{"TEMPORAL_PROFILE": "inline"})
		require.True(t, c.Temporal.ClientCert)
		require.False(t, c.Temporal.CustomCA)
	})
	t.Run("EnvOverridesFile", func(t *testing.T) {
		c := load(t, map[string]string{
			"TEMPORAL_PROFILE":   "cloud",
			"TEMPORAL_ADDRESS":   "127.0.0.1:7233",
			"TEMPORAL_NAMESPACE": "override",
		})
		require.Equal(t, "127.0.0.1:7233", c.TemporalAddress)
		require.Equal(t, "override", c.TemporalNamespace)
		require.True(t, c.Temporal.APIKey, "what the variables do not set comes from the profile")
	})
	t.Run("EnvTLSOffOverridesProfileCerts", func(t *testing.T) {
		c := load(t, map[string]string{"TEMPORAL_PROFILE": "selfhosted", "TEMPORAL_TLS": "false"})
		require.False(t, c.Temporal.TLS)
		require.True(t, c.TemporalClientOptions().ConnectionOptions.TLSDisabled)
	})
	t.Run("EnvCertOverridesProfileCert", func(t *testing.T) {
		c := load(t, map[string]string{"TEMPORAL_PROFILE": "selfhosted", "TEMPORAL_TLS_CLIENT_CERT_PATH": cs.otherCert, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.otherKey})
		require.Equal(t, cs.other.Cert.Raw, c.TemporalClientOptions().ConnectionOptions.TLS.Certificates[0].Certificate[0])
		require.True(t, c.Temporal.CustomCA, "the CA still comes from the profile")
	})
	t.Run("EnvAPIKeyOverridesFile", func(t *testing.T) {
		c := load(t, map[string]string{"TEMPORAL_PROFILE": "cloud", "TEMPORAL_API_KEY": apiKey})
		require.True(t, c.Temporal.APIKey)
	})
	t.Run("NoDefaultProfile", func(t *testing.T) {
		f := writeTOML(t, "[profile.other]\naddress = \"x:1\"\n")
		c, err := config.FromEnv(env(map[string]string{"TEMPORAL_CONFIG_FILE": f}))
		require.NoError(t, err, "a file without the default profile is fine when none is asked for")
		require.Equal(t, "127.0.0.1:7233", c.TemporalAddress)
	})
	t.Run("EmptyFile", func(t *testing.T) {
		c, err := config.FromEnv(env(map[string]string{"TEMPORAL_CONFIG_FILE": writeTOML(t, "")}))
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:7233", c.TemporalAddress)
	})
	t.Run("DefaultFile", func(t *testing.T) {
		// The CLI's file in the user's config directory is read when
		// TEMPORAL_CONFIG_FILE is unset.
		config.SetDefaultTemporalConfigFile(file)
		t.Cleanup(func() { config.SetDefaultTemporalConfigFile(filepath.Join(t.TempDir(), "none.toml")) })
		c, err := config.FromEnv(env(map[string]string{"TEMPORAL_PROFILE": "cloud"}))
		require.NoError(t, err)
		require.Equal(t, "scorekeeper.a1b2c", c.TemporalNamespace)
		require.Equal(t, file, c.Temporal.ConfigFile)
		_, err = config.FromEnv(env(map[string]string{"TEMPORAL_PROFILE": "nope"}))
		require.ErrorContains(t, err, `TEMPORAL_PROFILE="nope": no such profile in `+file+" (it has:")
		// A bad default file is an error too, naming it.
		bad := writeTOML(t, "[profile.default\n")
		config.SetDefaultTemporalConfigFile(bad)
		_, err = config.FromEnv(env(nil))
		require.ErrorContains(t, err, "the Temporal CLI's config file "+bad+" (TEMPORAL_CONFIG_FILE is unset; set it to use another): not valid TOML (line 2)")
		config.SetDefaultTemporalConfigFile(filepath.Dir(bad))
		_, err = config.FromEnv(env(nil))
		require.ErrorContains(t, err, "the Temporal CLI's config file "+filepath.Dir(bad)+" (TEMPORAL_CONFIG_FILE is unset; set it to use another): cannot read it: is a directory")
	})
}

// Ensure the API key and the client key reach no dump of the Config and no
// log line, whatever the verb or the handler.
func TestTemporal_SecretsNeverShown(t *testing.T) {
	cs := newCerts(t)
	file := writeTOML(t, fmt.Sprintf("[profile.default]\napi_key = %q\n", fileAPIKey))
	for name, kv := range map[string]map[string]string{
		"EnvKey":    {"TEMPORAL_API_KEY": apiKey, "TEMPORAL_TLS_CLIENT_CERT_DATA": string(cs.client.CertPEM), "TEMPORAL_TLS_CLIENT_KEY_DATA": string(cs.client.KeyPEM)},
		"FileKey":   {"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_TLS_CLIENT_CERT_PATH": cs.certFile, "TEMPORAL_TLS_CLIENT_KEY_PATH": cs.keyFile},
		"PlainText": {"TEMPORAL_API_KEY": apiKey, "TEMPORAL_TLS": "false"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := config.FromEnv(env(kv))
			require.NoError(t, err)
			require.True(t, c.Temporal.APIKey)
			var out bytes.Buffer
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
				fmt.Fprintf(&out, verb+"\n", c)
				fmt.Fprintf(&out, verb+"\n", c.Temporal)
				fmt.Fprintf(&out, verb+"\n", &c.Temporal)
			}
			fmt.Fprintln(&out, c.Temporal.String(), c.Temporal.GoString())
			for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
				slog.New(h).Info("config", "config", c, "temporal", c.Temporal, "ptr", &c.Temporal)
			}
			b, err := json.Marshal(c)
			require.NoError(t, err)
			out.Write(b)
			require.Contains(t, out.String(), "API key", "the dump says a key is set")
			requireNoSecret(t, out.String(), cs)
		})
	}
}
