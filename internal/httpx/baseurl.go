package httpx

import (
	"fmt"
	"net/url"
)

// ParseBaseURL parses the base URL of an HTTP API: an absolute http or
// https URL with a host, optionally with a path prefix, and without a query
// or fragment (the client appends a path and a query of its own). Both
// outbound clients and the configuration accept exactly these.
func ParseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid base URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("base URL %q must be an absolute http or https URL", s)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("base URL %q must not have a query or fragment", s)
	}
	return u, nil
}
