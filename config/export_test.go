package config

import "go.temporal.io/sdk/client"

// SetDefaultTemporalConfigFile points the default of TEMPORAL_CONFIG_FILE
// (the Temporal CLI's file in the user's config directory) at path, so
// tests do not read the machine's.
func SetDefaultTemporalConfigFile(path string) {
	defaultTemporalConfigFile = func() string { return path }
}

// Described is t without its options: the exported description only, for
// comparisons.
func (t TemporalClient) Described() TemporalClient {
	t.opts = client.Options{}
	return t
}
