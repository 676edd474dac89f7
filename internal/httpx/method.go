package httpx

import "net/http"

// MethodName maps a request method onto a fixed set of strings: the
// constant of each method a server of ours serves (Fiber's nine), and
// "other" for anything else.
// c.Method() points into a buffer fasthttp reuses for the next request on
// the connection, so a value kept past the request (a log attribute a
// handler may hold on to, a metric label) must not be it: kept as a
// label, a GET was once read back as "DEL". The constants are never
// overwritten, and a made-up method cannot mint label values. (Fiber
// answers methods outside its nine with 400 before any middleware runs,
// so "other" is a safeguard, not an expected value.)
func MethodName(m string) string {
	switch m {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodConnect:
		return http.MethodConnect
	case http.MethodTrace:
		return http.MethodTrace
	}
	return "other"
}
