package localrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/wait"

	"example.com/memcached-operator/test/internal/proc"
)

// Operator is the operator's manager running as a local process.
type Operator struct {
	// LogPath is the file the operator logs to.
	LogPath string
	// MetricsURL serves the operator's Prometheus metrics over plain HTTP on
	// the loopback interface.
	MetricsURL string
	// PprofURL serves Go's profiles (/debug/pprof/) on the loopback
	// interface when Config.Pprof is set.
	PprofURL string

	process *proc.Process
}

// Config says how to run the operator.
type Config struct {
	// Binary is the manager binary.
	Binary string
	// Kubeconfig authenticates the operator.
	Kubeconfig string
	// LogPath is the file the operator logs to.
	LogPath string
	// SecureMetrics serves metrics over HTTPS, behind authentication and
	// authorization, as in a cluster; otherwise over plain HTTP.
	SecureMetrics bool
	// Pprof serves Go's profiles, at PprofURL.
	Pprof bool
	// Args are passed to the manager after the ones Start sets.
	Args []string
	// Env is added to the manager's environment, e.g. WATCH_NAMESPACE.
	Env []string
}

// Start runs the manager binary with leader election off, metrics and probes
// on free loopback ports, and returns once it reports ready, that is once its
// caches have synced.
func Start(ctx context.Context, cfg Config) (*Operator, error) {
	ports, err := proc.FreeLoopbackPorts(3)
	if err != nil {
		return nil, err
	}
	metrics := "127.0.0.1:" + strconv.Itoa(ports[0])
	probes := "127.0.0.1:" + strconv.Itoa(ports[1])
	args := []string{
		"--kubeconfig=" + cfg.Kubeconfig,
		"--leader-elect=false",
		"--metrics-bind-address=" + metrics,
		"--metrics-secure=" + strconv.FormatBool(cfg.SecureMetrics),
		"--health-probe-bind-address=" + probes,
	}
	var pprofURL string
	if cfg.Pprof {
		pprof := "127.0.0.1:" + strconv.Itoa(ports[2])
		args = append(args, "--pprof-bind-address="+pprof)
		pprofURL = "http://" + pprof + "/debug/pprof"
	}
	args = append(args, cfg.Args...)

	p, err := proc.StartWithEnv("manager", cfg.LogPath, cfg.Env, cfg.Binary, args...)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if cfg.SecureMetrics {
		scheme = "https"
	}
	o := &Operator{LogPath: cfg.LogPath, MetricsURL: scheme + "://" + metrics + "/metrics", PprofURL: pprofURL, process: p}

	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := p.Exited(); err != nil {
			return false, err
		}
		_, err := get(ctx, "http://"+probes+"/readyz")
		return err == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the operator to be ready: %w", errors.Join(err, o.Stop()))
	}
	return o, nil
}

// Kill kills the operator at once, as a crash or an OOM kill would.
func (o *Operator) Kill() { o.process.Kill() }

// Exited returns an error once the operator has exited.
func (o *Operator) Exited() error { return o.process.Exited() }

// PID returns the operator's process ID.
func (o *Operator) PID() int { return o.process.PID() }

// Stop stops the operator, as a SIGTERM from the kubelet would, and returns
// an error unless it shut down cleanly: in time, with exit status 0.
func (o *Operator) Stop() error {
	if err := o.process.Stop(stopGrace); err != nil {
		return err
	}
	if err := o.process.Err(); err != nil {
		return fmt.Errorf("the operator did not shut down cleanly within %s of SIGTERM: %w (see %s)", stopGrace, err, o.LogPath)
	}
	return nil
}

// stopGrace is how long the operator has to stop, as the
// terminationGracePeriodSeconds of its Deployment in config/manager.
const stopGrace = 10 * time.Second

// Metrics scrapes the operator's metrics.
func (o *Operator) Metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	body, err := get(ctx, o.MetricsURL)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("failed to parse metrics: %w", err)
	}
	return families, nil
}

// HeapProfile returns the operator's heap profile, in pprof's format: the
// heap in use as of the last garbage collection, after forcing one when gc
// is set. The operator must have been started with Config.Pprof.
func (o *Operator) HeapProfile(ctx context.Context, gc bool) ([]byte, error) {
	if o.PprofURL == "" {
		return nil, fmt.Errorf("the operator serves no profiles: start it with Pprof")
	}
	query := "?gc=0"
	if gc {
		query = "?gc=1"
	}
	profile, err := get(ctx, o.PprofURL+"/heap"+query)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch the heap profile: %w", err)
	}
	return profile, nil
}

// get returns the body of a GET of url, an error unless it is 200 OK.
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}
