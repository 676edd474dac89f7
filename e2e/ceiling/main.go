// Command ceiling serves a constant JSON response with Fiber v2, as the
// load benchmark's ceiling: what this machine can serve at all while the
// load generator shares its cores.
package main

import (
	"log"
	"os"

	"github.com/gofiber/fiber/v2"
)

func main() {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	body := []byte(`{"userId":"445566","balance":19.2,"earned":51.2,"spent":12,"payout":20,"paidOut":20}`)
	app.Get("/*", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(body)
	})
	log.Fatal(app.Listen(os.Args[1]))
}
