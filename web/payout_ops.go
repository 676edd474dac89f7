package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"scorekeeper"
)

// operatorName is who the operator actions are recorded as: the admin
// token is one shared secret, so it names no one in particular.
const operatorName = "operator"

// PayoutHeld is the status GET /api/users/{userId}/payouts shows for a
// requested payout while the user's payouts are on hold.
const PayoutHeld scorekeeper.PayoutStatus = "held"

var errNoOperator = scorekeeper.Errorf(scorekeeper.EUnavailable, "payout actions are not available in this process")

// holdResponse is the answer of POST /api/users/{userId}/payouts:hold and
// :release.
type holdResponse struct {
	UserID string     `json:"userId"`
	Held   bool       `json:"held"`
	Reason string     `json:"reason,omitempty"`
	By     string     `json:"by,omitempty"`
	HeldAt *time.Time `json:"heldAt,omitempty"`
}

// actionBody is the optional JSON body of an operator action.
type actionBody struct {
	Reason string `json:"reason"`
}

// parseActionBody reads {"reason": "..."}: required for a hold, optional
// (and the body with it) otherwise. Unknown fields and trailing data are
// refused, so a typo is not silently an action without its reason.
func parseActionBody(c *fiber.Ctx, required bool) (string, error) {
	if _, err := queryParams(c); err != nil {
		return "", err
	}
	raw := bytes.TrimSpace(c.Body())
	var body actionBody
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return "", errInvalidf("the body must be a JSON object {\"reason\": \"...\"}: %s", jsonProblem(err))
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return "", errInvalidf("the body must be one JSON object")
		}
	}
	reason := strings.TrimSpace(body.Reason)
	if err := scorekeeper.ValidReason(reason, required); err != nil {
		return "", err
	}
	return reason, nil
}

// jsonProblem says what is wrong with a body without echoing it.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return "not valid JSON"
	case errors.As(err, &typ):
		return "reason must be a string"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "not valid JSON"
}

// pathPayoutID reads the {id} of /api/users/{userId}/payouts/{id}:action.
func pathPayoutID(c *fiber.Ctx) (string, error) {
	id, err := url.PathUnescape(strings.Clone(c.Params("id")))
	if err != nil || id == "" || len(id) > 256 || !utf8.ValidString(id) {
		return "", errInvalidf("the payout id must be 1 to 256 bytes of UTF-8")
	}
	return id, nil
}

// holdPayouts serves POST /api/users/{userId}/payouts:hold.
func holdPayouts(op scorekeeper.PayoutOperator) fiber.Handler {
	return func(c *fiber.Ctx) error {
		userID, err := pathUserID(c)
		if err != nil {
			return err
		}
		reason, err := parseActionBody(c, true)
		if err != nil {
			return err
		}
		if op == nil {
			return errNoOperator
		}
		h, err := op.HoldPayouts(c.UserContext(), userID, reason, operatorName)
		if err != nil {
			return err
		}
		at := h.HeldAt.UTC()
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(holdResponse{UserID: userID, Held: true, Reason: h.Reason, By: h.By, HeldAt: &at})
	}
}

// releasePayouts serves POST /api/users/{userId}/payouts:release.
func releasePayouts(op scorekeeper.PayoutOperator) fiber.Handler {
	return func(c *fiber.Ctx) error {
		userID, err := pathUserID(c)
		if err != nil {
			return err
		}
		if _, err := parseActionBody(c, false); err != nil {
			return err
		}
		if op == nil {
			return errNoOperator
		}
		if err := op.ReleasePayouts(c.UserContext(), userID, operatorName); err != nil {
			return err
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(holdResponse{UserID: userID})
	}
}

// payoutAction serves POST /api/users/{userId}/payouts/{id}:retry and
// :cancel, answering the payout as the workflow left it.
func payoutAction(op scorekeeper.PayoutOperator, cancel bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		userID, err := pathUserID(c)
		if err != nil {
			return err
		}
		id, err := pathPayoutID(c)
		if err != nil {
			return err
		}
		reason, err := parseActionBody(c, false)
		if err != nil {
			return err
		}
		if op == nil {
			return errNoOperator
		}
		var p scorekeeper.Payout
		if cancel {
			p, err = op.CancelPayout(c.UserContext(), userID, id, reason, operatorName)
		} else {
			p, err = op.RetryPayout(c.UserContext(), userID, id, operatorName)
		}
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(toUserPayoutResponses([]scorekeeper.Payout{p}, nil)[0])
	}
}
