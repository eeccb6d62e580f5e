package scaler_test

import (
	"testing"

	"nimbus/internal/scaler"
	"nimbus/internal/scaler/clustertest"
)

func TestHubConformance(t *testing.T) {
	clustertest.Run(t, func(t *testing.T) func(string) scaler.Cluster {
		return scaler.NewHub(nil).Join
	})
}
