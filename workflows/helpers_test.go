package workflows_test

import "go.temporal.io/sdk/converter"

func testsuiteDataConverter() converter.DataConverter { return converter.GetDefaultDataConverter() }
