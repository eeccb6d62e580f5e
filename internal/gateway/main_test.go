package gateway

import (
	"testing"

	"nimbus/internal/driver/drivertest"
)

// TestMain removes testfn's build when the tests end.
func TestMain(m *testing.M) { drivertest.Main(m) }
