package web

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPIDoc is the hand-written OpenAPI 3.0 description of this API.
//
//go:embed openapi.json
var openAPIDoc []byte

// docsHTML renders openAPIDoc in a browser with no third-party assets, so
// the docs work offline and load nothing from a CDN.
//
//go:embed docs.html
var docsHTML []byte

// openAPI serves GET /api/openapi.json.
func openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(openAPIDoc)
}

// docsPage serves GET /docs.
func docsPage(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	// The page runs only its own inline script and style and talks only to
	// this origin; nothing else may load.
	c.Set(fiber.HeaderContentSecurityPolicy,
		"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
	return c.Send(docsHTML)
}
