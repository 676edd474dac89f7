package worker

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"scorekeeper/workflows"
)

// CheckNamespace verifies what the workflows need of the namespace: the
// keyword search attribute UserId, which every payout workflow is started
// with. Without it each wake-up of a payout fails and nothing is ever paid,
// so the worker refuses to start and /readyz reports it.
func CheckNamespace(ctx context.Context, c client.Client, namespace string) error {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("read the search attributes of Temporal namespace %q: %w", namespace, err)
	}
	typ, ok := resp.GetCustomAttributes()[workflows.UserIDSearchAttribute.GetName()]
	switch {
	case !ok:
		return fmt.Errorf("the Temporal namespace %q has no %s search attribute, which payout workflows are started with; add it with: "+
			"temporal operator search-attribute create --namespace %s --name %s --type Keyword "+
			"(the dev server: temporal server start-dev --search-attribute %s=Keyword)",
			namespace, workflows.UserIDSearchAttribute.GetName(), namespace, workflows.UserIDSearchAttribute.GetName(), workflows.UserIDSearchAttribute.GetName())
	case typ != enumspb.INDEXED_VALUE_TYPE_KEYWORD:
		return fmt.Errorf("the Temporal namespace %q has the %s search attribute as %s; payout workflows need it as Keyword",
			namespace, workflows.UserIDSearchAttribute.GetName(), typ)
	}
	return nil
}
