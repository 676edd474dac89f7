package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
)

// TemporalClient is how the Temporal client connects, beyond the address
// and namespace (Config.TemporalAddress, Config.TemporalNamespace): TLS,
// a client certificate, an API key. It is loaded the way the Temporal CLI
// loads its own (go.temporal.io/sdk/contrib/envconfig): the profile
// TEMPORAL_PROFILE (default "default") of the TOML file
// TEMPORAL_CONFIG_FILE (default the CLI's, os.UserConfigDir()/temporalio/
// temporal.toml, skipped when missing), then the TEMPORAL_* variables
// over it. The zero TemporalClient is plaintext without credentials.
//
// The exported fields describe it without a secret, for logs; String,
// GoString, Format and LogValue show only them, so neither the API key nor
// a private key can reach a log line or a dump of the Config.
type TemporalClient struct {
	// TLS is whether the connection uses TLS.
	TLS bool
	// ClientCert is whether a client certificate is presented (mTLS).
	ClientCert bool
	// CustomCA is whether the server's certificate is verified against
	// TEMPORAL_TLS_SERVER_CA_CERT_* rather than the system's roots.
	CustomCA bool
	// ServerName is the TLS server name override, "" for none.
	ServerName string
	// NoHostVerification is TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: the
	// server's certificate is not verified.
	NoHostVerification bool
	// APIKey is whether an API key is sent (never the key itself).
	APIKey bool
	// ConfigFile is the TOML file the profile came from, and Profile the
	// profile; both "" when no profile was used (no file, or a file
	// without the default profile and TEMPORAL_PROFILE unset).
	ConfigFile string
	Profile    string

	// opts holds the connection options envconfig built (credentials,
	// TLS, headers, authority); HostPort and Namespace are left out.
	opts client.Options
}

// Options returns the connection options (TLS, credentials, gRPC headers
// and authority of the profile) without address or namespace: Config's
// TemporalClientOptions adds those.
func (t TemporalClient) Options() client.Options { return t.opts }

// TemporalClientOptions returns the options to dial Temporal with:
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the connection of c.Temporal.
// The caller adds what is its own (logger, metrics handler, data
// converter, interceptors).
func (c Config) TemporalClientOptions() client.Options {
	opts := c.Temporal.opts
	opts.HostPort = c.TemporalAddress
	opts.Namespace = c.TemporalNamespace
	return opts
}

// String describes the connection without secrets, e.g. "TLS, client
// certificate, API key, profile \"prod\" of /etc/temporal.toml".
func (t TemporalClient) String() string {
	parts := []string{"plaintext"}
	if t.TLS {
		parts[0] = "TLS"
		if t.ServerName != "" {
			parts = append(parts, "server name "+t.ServerName)
		}
		if t.CustomCA {
			parts = append(parts, "custom CA")
		}
		if t.NoHostVerification {
			parts = append(parts, "host verification off")
		}
		if t.ClientCert {
			parts = append(parts, "client certificate")
		}
	}
	if t.APIKey {
		parts = append(parts, "API key")
	}
	if t.ConfigFile != "" {
		parts = append(parts, fmt.Sprintf("profile %q of %s", t.Profile, t.ConfigFile))
	}
	return strings.Join(parts, ", ")
}

// GoString is String: %#v must not print the credentials either.
func (t TemporalClient) GoString() string { return "config.TemporalClient{" + t.String() + "}" }

// Format prints String for every verb, so no verb reaches the options.
func (t TemporalClient) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, t.GoString())
		return
	}
	fmt.Fprint(f, t.String())
}

// LogValue is the exported, secret-free description.
func (t TemporalClient) LogValue() slog.Value {
	attrs := []slog.Attr{slog.Bool("tls", t.TLS)}
	if t.TLS {
		attrs = append(attrs, slog.Bool("clientCert", t.ClientCert), slog.Bool("customCA", t.CustomCA))
		if t.ServerName != "" {
			attrs = append(attrs, slog.String("serverName", t.ServerName))
		}
		if t.NoHostVerification {
			attrs = append(attrs, slog.Bool("hostVerification", false))
		}
	}
	attrs = append(attrs, slog.Bool("apiKey", t.APIKey))
	if t.ConfigFile != "" {
		attrs = append(attrs, slog.String("configFile", t.ConfigFile), slog.String("profile", t.Profile))
	}
	return slog.GroupValue(attrs...)
}

// defaultTemporalConfigFile is where the CLI looks when
// TEMPORAL_CONFIG_FILE is unset; tests point it elsewhere.
var defaultTemporalConfigFile = envconfig.DefaultConfigFilePath

// envLookup is getenv as envconfig.EnvLookup. An empty variable is unset,
// as for every other variable here. Environ lists nothing: getenv cannot
// enumerate, so TEMPORAL_GRPC_META_* is not read (a profile's grpc_meta
// is).
type envLookup func(string) string

func (e envLookup) LookupEnv(k string) (string, bool) { v := e(k); return v, v != "" }
func (envLookup) Environ() []string                   { return nil }

// temporalLoader loads TemporalClient, collecting errors that name where
// each bad value came from: the variable, or the key of the profile.
type temporalLoader struct {
	getenv  func(string) string
	file    string // the file a profile is used from, "" none
	fileVar bool   // file came from TEMPORAL_CONFIG_FILE
	profile string // the profile used, "" none
	errs    []error
}

// where names the source of a setting: the variable when set, else the
// file, the profile and the key, e.g.
// "TEMPORAL_CONFIG_FILE=/etc/temporal.toml [profile.prod] tls.client_key_path".
func (l *temporalLoader) where(env, key string) string {
	if l.getenv(env) != "" {
		return env
	}
	return fmt.Sprintf("%s [profile.%s] %s", l.fileName(), l.profile, key)
}

func (l *temporalLoader) fileName() string {
	if l.fileVar {
		return "TEMPORAL_CONFIG_FILE=" + l.file
	}
	return l.file
}

// failFile records an error about the config file at path, named by
// TEMPORAL_CONFIG_FILE or the CLI's default.
func (l *temporalLoader) failFile(path string, err error) {
	if l.fileVar {
		l.fail("TEMPORAL_CONFIG_FILE", path, err)
		return
	}
	l.errs = append(l.errs, fmt.Errorf("the Temporal CLI's config file %s (TEMPORAL_CONFIG_FILE is unset; set it to use another): %w", path, err))
}

// fail records an error about a setting; value is shown quoted unless it
// is "" (data and secrets are never shown).
func (l *temporalLoader) fail(src, value string, err error) {
	if value != "" {
		l.errs = append(l.errs, fmt.Errorf("%s=%q: %w", src, value, err))
		return
	}
	l.errs = append(l.errs, fmt.Errorf("%s: %w", src, err))
}

// loadTemporal reads TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE and the
// connection variables into c (TemporalAddress, TemporalNamespace,
// Temporal), returning every problem found.
func loadTemporal(getenv func(string) string, c *Config) []error {
	l := &temporalLoader{getenv: getenv}
	prof, ok := l.readProfile()
	if !ok {
		return l.errs
	}
	if err := prof.ApplyEnvVars(envLookup(getenv)); err != nil {
		l.errs = append(l.errs, fmt.Errorf("TEMPORAL_*: %w", err))
		return l.errs
	}
	// envconfig skips a boolean it cannot read; we refuse it.
	for _, name := range []string{"TEMPORAL_TLS", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"} {
		if v := getenv(name); v != "" && !slices.Contains([]string{"1", "0", "true", "false"}, strings.ToLower(v)) {
			l.fail(name, v, errors.New("want true or false (or 1 or 0)"))
		}
	}

	addr := prof.Address
	if addr == "" {
		addr = Defaults().TemporalAddress
	} else if _, port, err := net.SplitHostPort(addr); err != nil {
		l.fail(l.where("TEMPORAL_ADDRESS", "address"), addr, errors.New("want host:port or :port"))
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		l.fail(l.where("TEMPORAL_ADDRESS", "address"), addr, errors.New("port must be 0-65535"))
	}
	ns := prof.Namespace
	if ns == "" {
		ns = Defaults().TemporalNamespace
	}
	if prof.APIKey != "" {
		// Trimmed like ADMIN_TOKEN (a key mounted from a file ends in a
		// newline); never echoed.
		k := strings.TrimSpace(prof.APIKey)
		switch {
		case k == "":
			l.fail(l.where("TEMPORAL_API_KEY", "api_key"), "", errors.New("is only whitespace; unset it or set a key"))
		case strings.IndexFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
			l.fail(l.where("TEMPORAL_API_KEY", "api_key"), "", errors.New("contains whitespace or control characters, which a request header cannot carry"))
		}
		prof.APIKey = k
	}
	// A remote codec is for reading payloads in the CLI and the UI, never
	// for a worker (envconfig's own advice): scorekeeper's data converter
	// is its own, so codec settings are not applied.
	prof.Codec = nil
	if prof.TLS != nil {
		l.checkTLS(prof.TLS)
	}
	if len(l.errs) > 0 {
		return l.errs
	}

	opts, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil { // checkTLS has ruled out what envconfig refuses
		return []error{fmt.Errorf("the Temporal client configuration: %w", err)}
	}
	opts.HostPort, opts.Namespace = "", ""
	t := TemporalClient{ConfigFile: l.file, Profile: l.profile, APIKey: prof.APIKey != "", opts: opts}
	if cfg := opts.ConnectionOptions.TLS; cfg != nil {
		t.TLS = true
		t.ClientCert = len(cfg.Certificates) > 0
		t.CustomCA = cfg.RootCAs != nil
		t.ServerName = cfg.ServerName
		t.NoHostVerification = cfg.InsecureSkipVerify
	} else if t.APIKey && !opts.ConnectionOptions.TLSDisabled {
		t.TLS = true // the SDK turns TLS on for an API key unless told not to
	}
	c.TemporalAddress, c.TemporalNamespace, c.Temporal = addr, ns, t
	return nil
}

// readProfile reads the config file, when there is one, and returns a copy
// of the profile to use (the zero profile when there is none). ok is false
// when the file or the profile is an error.
func (l *temporalLoader) readProfile() (prof envconfig.ClientConfigProfile, ok bool) {
	path := l.getenv("TEMPORAL_CONFIG_FILE")
	l.fileVar = path != ""
	if !l.fileVar {
		path = defaultTemporalConfigFile()
	}
	name := l.getenv("TEMPORAL_PROFILE")
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		switch {
		case err == nil:
			l.file = path
		case !l.fileVar && errors.Is(err, fs.ErrNotExist):
			// No CLI config here: the variables alone.
		default:
			l.failFile(path, fmt.Errorf("cannot read it: %w", unwrapPath(err)))
			return prof, false
		}
	}
	if l.file == "" {
		if name != "" {
			where := "TEMPORAL_CONFIG_FILE is unset and " + path + " does not exist"
			if path == "" {
				where = "TEMPORAL_CONFIG_FILE is unset and there is no user config directory"
			}
			l.fail("TEMPORAL_PROFILE", name, fmt.Errorf("no config file to read it from (%s)", where))
			return prof, false
		}
		return prof, true
	}

	var cc envconfig.ClientConfig
	if err := cc.FromTOML(data, envconfig.ClientConfigFromTOMLOptions{}); err != nil {
		// A syntax error's message may quote the text at fault, a secret
		// perhaps: only where it is. A type error names types only.
		msg := "not valid TOML"
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg += fmt.Sprintf(" (line %d", pe.Position.Line)
			if pe.LastKey != "" {
				msg += ", key " + pe.LastKey
			}
			msg += ")"
		} else {
			msg = "not a Temporal client config: " + strings.TrimPrefix(err.Error(), "toml: ")
		}
		l.failFile(l.file, errors.New(msg))
		return prof, false
	}
	l.profile = name
	if name == "" {
		l.profile = envconfig.DefaultConfigFileProfile
	}
	p := cc.Profiles[l.profile]
	if p == nil {
		if name == "" {
			// No default profile: the variables alone, as without a file.
			l.file, l.profile = "", ""
			return prof, true
		}
		have := make([]string, 0, len(cc.Profiles))
		for k := range cc.Profiles {
			have = append(have, k)
		}
		slices.Sort(have)
		l.fail("TEMPORAL_PROFILE", name, fmt.Errorf("no such profile in %s (it has: %s)", l.fileName(), strings.Join(have, ", ")))
		return prof, false
	}
	prof = *p
	if p.TLS != nil {
		t := *p.TLS
		prof.TLS = &t
	}
	if p.GRPCMeta != nil {
		prof.GRPCMeta = make(map[string]string, len(p.GRPCMeta))
		for k, v := range p.GRPCMeta {
			prof.GRPCMeta[k] = v
		}
	}
	return prof, true
}

// checkTLS checks the TLS settings, naming the variable or key at fault,
// and replaces the file paths with the files' contents, so what was
// checked is what is used.
func (l *temporalLoader) checkTLS(t *envconfig.ClientConfigTLS) {
	certSrcPath := l.where("TEMPORAL_TLS_CLIENT_CERT_PATH", "tls.client_cert_path")
	certSrcData := l.where("TEMPORAL_TLS_CLIENT_CERT_DATA", "tls.client_cert_data")
	keySrcPath := l.where("TEMPORAL_TLS_CLIENT_KEY_PATH", "tls.client_key_path")
	keySrcData := l.where("TEMPORAL_TLS_CLIENT_KEY_DATA", "tls.client_key_data")
	caSrcPath := l.where("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "tls.server_ca_cert_path")
	caSrcData := l.where("TEMPORAL_TLS_SERVER_CA_CERT_DATA", "tls.server_ca_cert_data")

	if t.Disabled {
		// TLS off beside TLS settings contradicts itself, unless it is
		// TEMPORAL_TLS=false over the profile's TLS settings: an override,
		// as in the CLI.
		offByEnv := l.getenv("TEMPORAL_TLS") != ""
		var set []string
		for _, s := range []struct {
			on       bool
			env, key string
		}{
			{t.ClientCertPath != "", "TEMPORAL_TLS_CLIENT_CERT_PATH", "tls.client_cert_path"},
			{len(t.ClientCertData) > 0, "TEMPORAL_TLS_CLIENT_CERT_DATA", "tls.client_cert_data"},
			{t.ClientKeyPath != "", "TEMPORAL_TLS_CLIENT_KEY_PATH", "tls.client_key_path"},
			{len(t.ClientKeyData) > 0, "TEMPORAL_TLS_CLIENT_KEY_DATA", "tls.client_key_data"},
			{t.ServerCACertPath != "", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "tls.server_ca_cert_path"},
			{len(t.ServerCACertData) > 0, "TEMPORAL_TLS_SERVER_CA_CERT_DATA", "tls.server_ca_cert_data"},
			{t.ServerName != "", "TEMPORAL_TLS_SERVER_NAME", "tls.server_name"},
			{t.DisableHostVerification, "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "tls.disable_host_verification"},
		} {
			if s.on && (!offByEnv || l.getenv(s.env) != "") {
				name := s.env // or the key of the profile just named
				if l.getenv(s.env) == "" {
					name = s.key
				}
				set = append(set, name)
			}
		}
		if len(set) > 0 {
			verb := "are"
			if len(set) == 1 {
				verb = "is"
			}
			l.fail(l.where("TEMPORAL_TLS", "tls.disabled"), "", fmt.Errorf("turns TLS off, but %s %s set: unset one or the other", strings.Join(set, ", "), verb))
		}
		return
	}

	// read returns the PEM of a path-or-data setting and where it came
	// from; ok is false when it is an error (recorded).
	read := func(path string, data []byte, srcPath, srcData string) (pemData []byte, src string, ok bool) {
		switch {
		case path != "" && len(data) > 0:
			l.fail(srcPath, "", fmt.Errorf("and %s are both set: set one", srcData))
			return nil, "", false
		case path != "":
			b, err := os.ReadFile(path)
			if err != nil {
				l.fail(srcPath, path, fmt.Errorf("cannot read it: %w", unwrapPath(err)))
				return nil, "", false
			}
			return b, fmt.Sprintf("%s=%q", srcPath, path), true
		case len(data) > 0:
			return data, srcData, true
		}
		return nil, "", true
	}
	certPEM, certSrc, certOK := read(t.ClientCertPath, t.ClientCertData, certSrcPath, certSrcData)
	keyPEM, keySrc, keyOK := read(t.ClientKeyPath, t.ClientKeyData, keySrcPath, keySrcData)
	caPEM, caSrc, caOK := read(t.ServerCACertPath, t.ServerCACertData, caSrcPath, caSrcData)

	if certOK && keyOK {
		switch {
		case certPEM != nil && keyPEM == nil:
			l.errs = append(l.errs, fmt.Errorf("%s: a client certificate needs its key: set TEMPORAL_TLS_CLIENT_KEY_PATH or _DATA (tls.client_key_path or client_key_data in a profile)", certSrc))
		case certPEM == nil && keyPEM != nil:
			l.errs = append(l.errs, fmt.Errorf("%s: a client key needs its certificate: set TEMPORAL_TLS_CLIENT_CERT_PATH or _DATA (tls.client_cert_path or client_cert_data in a profile)", keySrc))
		case certPEM != nil:
			if cert, err := parseCertPEM(certPEM); err != nil {
				l.errs = append(l.errs, fmt.Errorf("%s: %w", certSrc, err))
			} else if now := time.Now(); now.After(cert.NotAfter) {
				l.errs = append(l.errs, fmt.Errorf("%s: the certificate expired on %s", certSrc, cert.NotAfter.UTC().Format(time.RFC3339)))
			} else if now.Before(cert.NotBefore) {
				l.errs = append(l.errs, fmt.Errorf("%s: the certificate is not valid before %s", certSrc, cert.NotBefore.UTC().Format(time.RFC3339)))
			} else if b, _ := pem.Decode(keyPEM); b == nil || !strings.HasSuffix(b.Type, "PRIVATE KEY") {
				l.errs = append(l.errs, fmt.Errorf("%s: want a PEM private key (-----BEGIN … PRIVATE KEY-----)", keySrc))
			} else if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				// tls's messages name no key material.
				l.errs = append(l.errs, fmt.Errorf("%s: not the key of %s, or not readable: %w", keySrc, certSrc, err))
			} else {
				t.ClientCertPath, t.ClientCertData = "", certPEM
				t.ClientKeyPath, t.ClientKeyData = "", keyPEM
			}
		}
	}
	if caOK && caPEM != nil {
		if _, err := parseCertPEM(caPEM); err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s: %w", caSrc, err))
		} else if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
			l.errs = append(l.errs, fmt.Errorf("%s: no usable PEM certificate in it", caSrc))
		} else {
			t.ServerCACertPath, t.ServerCACertData = "", caPEM
		}
	}
}

// parseCertPEM returns the first certificate of a PEM bundle.
func parseCertPEM(b []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("want a PEM certificate (-----BEGIN CERTIFICATE-----), found none")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("not a readable certificate: %w", err)
		}
		return cert, nil
	}
}

// unwrapPath drops the path an fs error repeats (the message names it).
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
