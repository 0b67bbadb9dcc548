package localrun

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/wait"

	"example.com/memcached-operator/internal/proc"
)

// Operator is the operator's manager running as a local process.
type Operator struct {
	// LogPath is the file the operator logs to.
	LogPath string
	// MetricsURL serves the operator's Prometheus metrics over plain HTTP on
	// the loopback interface.
	MetricsURL string

	process *proc.Process
}

// Start runs the manager binary with kubeconfig, leader election off, metrics
// and probes on free loopback ports, and returns once it reports ready, that is
// once its caches have synced. Extra arguments are passed to the manager.
func Start(ctx context.Context, binary, kubeconfig, logPath string, extraArgs ...string) (*Operator, error) {
	ports, err := proc.FreeLoopbackPorts(2)
	if err != nil {
		return nil, err
	}
	metrics := "127.0.0.1:" + strconv.Itoa(ports[0])
	probes := "127.0.0.1:" + strconv.Itoa(ports[1])
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--metrics-bind-address=" + metrics,
		"--metrics-secure=false",
		"--health-probe-bind-address=" + probes,
	}, extraArgs...)

	p, err := proc.Start("manager", logPath, binary, args...)
	if err != nil {
		return nil, err
	}
	o := &Operator{LogPath: logPath, MetricsURL: "http://" + metrics + "/metrics", process: p}

	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := p.Exited(); err != nil {
			return false, err
		}
		return get(ctx, "http://"+probes+"/readyz") == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the operator to be ready: %w", errors.Join(err, o.Stop()))
	}
	return o, nil
}

// PID returns the operator's process ID.
func (o *Operator) PID() int { return o.process.PID() }

// Stop stops the operator, as a SIGTERM from the kubelet would.
func (o *Operator) Stop() error {
	return o.process.Stop(30 * time.Second)
}

// Metrics scrapes the operator's metrics.
func (o *Operator) Metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.MetricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to scrape metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("failed to parse metrics: %w", err)
	}
	return families, nil
}

func get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
