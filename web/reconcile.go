package web

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"scorekeeper"
)

type reconcileResponse struct {
	UsersChecked int             `json:"usersChecked"`
	Drifted      []driftResponse `json:"drifted"`
	Repaired     int             `json:"repaired"`
}

type driftResponse struct {
	UserID     string             `json:"userId"`
	Field      string             `json:"field"`
	Stored     scorekeeper.Amount `json:"stored"`
	Recomputed scorekeeper.Amount `json:"recomputed"`
}

var errNoReconciler = scorekeeper.Errorf(scorekeeper.EUnavailable, "reconciling is not available in this process")

// startReconcile serves POST /api/reconcile: 202 with the run's ids, or
// with ?wait=true, 200 with the report once it finishes. ?repair=true
// rewrites drifted summaries; otherwise nothing is changed. After a
// repair it waited for, catchUp (when set) makes this process's reads
// serve the repaired summaries before the answer goes out.
func startReconcile(r scorekeeper.Reconciler, waitTimeout time.Duration, catchUp func(context.Context) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		q, err := queryParams(c, "wait", "repair")
		if err != nil {
			return err
		}
		flags := map[string]bool{}
		for _, name := range []string{"wait", "repair"} {
			switch v, ok := q[name]; {
			case !ok, v == "false":
			case v == "true":
				flags[name] = true
			default:
				return errInvalidf("%s must be true or false", name)
			}
		}
		if r == nil {
			return errNoReconciler
		}
		ctx := c.UserContext()
		run, err := r.StartReconcile(ctx, flags["repair"])
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		if flags["wait"] {
			wctx, cancel := context.WithTimeout(ctx, waitTimeout)
			defer cancel()
			rep, err := r.WaitReconcile(wctx, run)
			switch {
			case err == nil:
				if flags["repair"] {
					readYourWrites(ctx, catchUp)
				}
				return c.Status(fiber.StatusOK).JSON(toReconcileResponse(rep))
			case wctx.Err() == nil || ctx.Err() != nil:
				return err
			}
			// Our wait ran out, not the reconciliation: it is accepted.
		}
		return c.Status(fiber.StatusAccepted).JSON(syncRunResponse{WorkflowID: run.WorkflowID, RunID: run.RunID})
	}
}

func toReconcileResponse(r scorekeeper.ReconcileReport) reconcileResponse {
	out := reconcileResponse{UsersChecked: r.UsersChecked, Repaired: r.Repaired, Drifted: make([]driftResponse, len(r.Drifted))}
	for i, d := range r.Drifted {
		out.Drifted[i] = driftResponse{UserID: d.UserID, Field: d.Field, Stored: d.Stored, Recomputed: d.Recomputed}
	}
	return out
}
