package natscluster_test

import (
	"context"
	"testing"

	"nimbus/internal/backbone"
	"nimbus/internal/scaler"
	"nimbus/internal/scaler/clustertest"
	"nimbus/internal/scaler/natscluster"
)

func TestConformance(t *testing.T) {
	clustertest.Run(t, func(t *testing.T) func(string) scaler.Cluster {
		bb, err := backbone.Open(context.Background(), backbone.Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bb.Close)
		return func(id string) scaler.Cluster {
			c, err := natscluster.Open(context.Background(), bb.Conn, bb.JS, id, 1)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	})
}
