package controller

import (
	"errors"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"example.com/memcached-operator/internal/resources"
)

func TestARefusedSpecStillEndsADrainOnTime(t *testing.T) {
	refused := reconcile.TerminalError(errors.New("Secret users does not exist"))
	failed := errors.New("the API server is away")
	for _, tc := range []struct {
		name      string
		drainLeft time.Duration
		err       error
		wantAfter time.Duration
		wantErr   error
	}{
		{name: "refused while draining: back when the drain ends", drainLeft: 7 * time.Second, err: refused, wantAfter: 7 * time.Second},
		{name: "refused, no drain: terminal", err: refused, wantErr: refused},
		{name: "failed while draining: retried with backoff", drainLeft: 7 * time.Second, err: failed, wantErr: failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scope{servers: resources.Servers{RequeueAfter: tc.drainLeft}}
			result, err := s.result(tc.err)
			if result.RequeueAfter != tc.wantAfter || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("result %+v, error %v; want requeue after %v, error %v", result, err, tc.wantAfter, tc.wantErr)
			}
		})
	}
}
