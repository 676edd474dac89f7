package config

import (
	"net/url"
	"strings"
)

// RedactURL hides the secrets a URL may carry before it reaches a log line
// or an error: the password of its user info and the values of query
// parameters named like secrets (password, secret, token, key). A URL that
// does not parse shows its scheme only, since where the secret sits in it
// cannot be told.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if scheme, _, ok := strings.Cut(s, "://"); ok && !strings.ContainsAny(scheme, "@:/?") {
			return scheme + "://… (not shown: does not parse)"
		}
		return "… (not shown: does not parse)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			lk := strings.ToLower(k)
			for _, secret := range []string{"pass", "secret", "token", "key"} {
				if strings.Contains(lk, secret) {
					q.Set(k, "xxxxx")
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
