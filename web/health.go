package web

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// ReadyTimeout bounds each readiness check, so a hung dependency makes
// /readyz answer 503 promptly instead of hanging the probe.
const ReadyTimeout = 2 * time.Second

// readyResponse is the body of GET /readyz, 200 or 503 alike.
type readyResponse struct {
	// Status is "ok" when every check passed, else "unavailable".
	Status string        `json:"status"`
	Checks []checkResult `json:"checks"`
}

// checkResult is one check's outcome: "ok" or "unreachable". The error
// itself is logged, not shown: it may carry addresses or driver text.
type checkResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// healthz serves GET /healthz: the process is alive and serving.
func healthz(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz serves GET /readyz: 200 when every dependency answers, else 503,
// so a load balancer stops sending traffic this process cannot serve.
func readyz(checks []ReadyCheck, log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		res := readyResponse{Status: "ok", Checks: make([]checkResult, len(checks))}
		errs := make([]error, len(checks))
		// Concurrently: the probe takes as long as the slowest check, not
		// the sum of them.
		var wg sync.WaitGroup
		for i, ch := range checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
				defer cancel()
				errs[i] = ch.Check(cctx)
			}()
		}
		wg.Wait()
		for i, ch := range checks {
			res.Checks[i] = checkResult{Name: ch.Name, Status: "ok"}
			if errs[i] != nil {
				log.Warn("readiness check failed", "check", ch.Name, "err", errs[i])
				res.Checks[i].Status = "unreachable"
				res.Status = "unavailable"
			}
		}
		status := fiber.StatusOK
		if res.Status != "ok" {
			status = fiber.StatusServiceUnavailable
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(status).JSON(res)
	}
}
