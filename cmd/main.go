/*
Copyright The memcached-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Command manager runs the memcached operator.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	// Import all Kubernetes client auth plugins (e.g. Azure, GCP, OIDC, etc.)
	// to ensure that exec-entrypoint and run can make use of them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/controller"
	"example.com/memcached-operator/internal/resources"
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cachev1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr          string
		probeAddr            string
		pprofAddr            string
		enableLeaderElection bool
		leaderElectionNS     string
		secureMetrics        bool
		enableHTTP2          bool
		metricsCertPath      string
		metricsCertName      string
		metricsCertKey       string
		concurrentReconciles int
		memcachedUID         string
		images               resources.Images
		runbookBaseURL       string
		leaseDuration        time.Duration
		renewDeadline        time.Duration
		retryPeriod          time.Duration
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "The address Go's profiling endpoints (/debug/pprof/) "+
		"bind to, e.g. 127.0.0.1:8082; 0 disables them. They are not authenticated: bind them to loopback only.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", inCluster(),
		"Enable leader election, so that only one of several replicas of the operator acts at a time. "+
			"On by default when running in a cluster, off otherwise.")
	flag.StringVar(&leaderElectionNS, "leader-election-namespace", "",
		"The namespace of the leader election Lease. In a cluster, the operator's own namespace by default; "+
			"it must be given when running outside a cluster with leader election on.")
	flag.DurationVar(&leaseDuration, "leader-election-lease-duration", 10*time.Second,
		"How long a standby replica waits, after it last saw the leader renew the Lease, before taking over: about the longest "+
			"pause in reconciling when the leader dies without handing the Lease back.")
	flag.DurationVar(&renewDeadline, "leader-election-renew-deadline", 7*time.Second,
		"How long the leader keeps trying to renew the Lease before it stops acting.")
	flag.DurationVar(&retryPeriod, "leader-election-retry-period", time.Second,
		"How often replicas try to take or renew the Lease.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS, behind authentication and authorization. "+
			"Use --metrics-secure=false to use HTTP instead.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "If set, HTTP/2 will be enabled for the metrics server.")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "",
		"The directory of the metrics server's certificate and key, such as a mounted cert-manager Secret. "+
			"Without it, the metrics server makes itself a self-signed certificate. Changes to the files are picked up. "+
			"Without this flag, the environment variable "+metricsCertPathEnv+" sets it.")
	flag.StringVar(&metricsCertName, "metrics-cert-name", "tls.crt", "The file name of the metrics server's certificate in --metrics-cert-path.")
	flag.StringVar(&metricsCertKey, "metrics-cert-key", "tls.key", "The file name of the metrics server's key in --metrics-cert-path.")
	flag.IntVar(&concurrentReconciles, "max-concurrent-reconciles", 16,
		"How many Memcacheds are reconciled at once. A reconcile mostly waits for the API server, so many "+
			"workers per core keep up with many new Memcacheds.")
	flag.StringVar(&memcachedUID, "memcached-uid", uidFixed,
		"The user the memcached pods run as: \"fixed\" runs them as uid and gid 11211, the memcache user of the "+
			"official image, which names its user but not its number; \"platform\" sets no uid and leaves it to the "+
			"platform, as OpenShift's restricted-v2 assigns one from the namespace's range; \"auto\" is \"platform\" "+
			"when the cluster serves OpenShift's security.openshift.io API, \"fixed\" otherwise. Without this flag, "+
			"the environment variable "+memcachedUIDEnv+" sets it.")
	flag.StringVar(&images.Memcached, "memcached-image", resources.DefaultImage,
		"The image of the memcached pods of the Memcacheds that name none in spec.image, such as the same image "+
			"in a mirror registry. Changing it rolls those Memcacheds' pods. Without this flag, the environment "+
			"variable "+memcachedImageEnv+" sets it.")
	flag.StringVar(&images.Exporter, "exporter-image", resources.DefaultExporterImage,
		"The image of the exporter of the Memcacheds that name none in spec.monitoring.exporterImage. Without "+
			"this flag, the environment variable "+exporterImageEnv+" sets it.")
	flag.StringVar(&runbookBaseURL, "runbook-base-url", resources.DefaultRunbookBaseURL,
		"Where the runbooks of the alerts are, such as a copy of docs/monitoring.md on an internal site: each alert's "+
			"runbook_url is it followed by #<alert name in lower case>.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	memoryLimit, err := goMemoryLimit(os.Getenv)
	if err != nil {
		setupLog.Error(err, "Invalid environment")
		os.Exit(1)
	}
	if memoryLimit > 0 {
		debug.SetMemoryLimit(memoryLimit)
		setupLog.Info("Set the Go runtime's soft memory limit from the container's", "bytes", memoryLimit)
	}
	given := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
	metricsCertPath = flagOrEnv(metricsCertPath, given["metrics-cert-path"], metricsCertPathEnv, os.Getenv)
	images.Memcached = flagOrEnv(images.Memcached, given["memcached-image"], memcachedImageEnv, os.Getenv)
	images.Exporter = flagOrEnv(images.Exporter, given["exporter-image"], exporterImageEnv, os.Getenv)
	uidModeValue, uidModeSource, err := uidMode(memcachedUID, given["memcached-uid"], os.Getenv)
	if err != nil {
		setupLog.Error(err, "Invalid UID mode of the memcached pods")
		os.Exit(1)
	}

	// HTTP/2 is off unless asked for: its Stream Cancellation and Rapid Reset
	// vulnerabilities (CVE-2023-44487, CVE-2023-39325) are avoided this way.
	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}

	// A certificate given by --metrics-cert-path replaces the self-signed
	// one; the watcher reloads it when it is renewed.
	var metricsCertWatcher *certwatcher.CertWatcher
	if metricsCertPath != "" {
		metricsCertWatcher, err = certwatcher.New(
			filepath.Join(metricsCertPath, metricsCertName), filepath.Join(metricsCertPath, metricsCertKey))
		if err != nil {
			setupLog.Error(err, "Failed to read the metrics server's certificate", "path", metricsCertPath)
			os.Exit(1)
		}
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.GetCertificate = metricsCertWatcher.GetCertificate })
	}

	metricsOptions := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if secureMetrics {
		metricsOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	namespaces := watchNamespaces()
	if len(namespaces) > 0 {
		setupLog.Info("Watching only some namespaces", "namespaces", namespaces)
	}

	cfg := ctrl.GetConfigOrDie()
	mapper, err := newRESTMapper(cfg)
	if err != nil {
		setupLog.Error(err, "Failed to look up the cluster's APIs")
		os.Exit(1)
	}
	apis, err := controller.LookUpAPIs(mapper)
	if err != nil {
		setupLog.Error(err, "Failed to look up the optional APIs")
		os.Exit(1)
	}
	platformUID, err := platformAssignsUID(uidModeValue, mapper)
	if err != nil {
		setupLog.Error(err, "Failed to choose the memcached pods' user", "mode", uidModeValue)
		os.Exit(1)
	}
	setupLog.Info("Chose the memcached pods' user", "mode", uidModeValue, "from", uidModeSource,
		"platformAssignsUID", platformUID)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controller.CacheOptions(apis, namespaces...),
		Metrics:                       metricsOptions,
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                enableLeaderElection,
		LeaderElectionID:              "memcached-operator.cache.example.com",
		LeaderElectionNamespace:       leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
	})
	if err != nil {
		setupLog.Error(err, "Failed to create manager")
		os.Exit(1)
	}

	ctx := ctrl.SetupSignalHandler()
	if err := (&controller.MemcachedReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder(resources.ManagerName),
		APIs:      apis,

		PlatformAssignsUID: platformUID,
		Images:             images,
		RunbookBaseURL:     runbookBaseURL,
	}).SetupWithManager(ctx, mgr, concurrentReconciles); err != nil {
		setupLog.Error(err, "Failed to create controller", "controller", "memcached")
		os.Exit(1)
	}

	if metricsCertWatcher != nil {
		if err := mgr.Add(metricsCertWatcher); err != nil {
			setupLog.Error(err, "Failed to watch the metrics server's certificate")
			os.Exit(1)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("informers", controller.CacheSynced(mgr.GetCache())); err != nil {
		setupLog.Error(err, "Failed to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("Starting manager")
	if err := mgr.Start(ctx); err != nil {
		setupLog.Error(err, "Failed to run manager")
		os.Exit(1)
	}
}

// newRESTMapper returns a REST mapper of the cluster's APIs as the operator
// starts, through which it looks up the optional ones, such as
// prometheus-operator's ServiceMonitor, and OpenShift's.
func newRESTMapper(cfg *rest.Config) (meta.RESTMapper, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create an HTTP client: %w", err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("failed to create a REST mapper: %w", err)
	}
	return mapper, nil
}

// inCluster reports whether the operator runs in a pod of a cluster.
func inCluster() bool {
	_, err := rest.InClusterConfig()
	return err == nil
}

// watchNamespaces returns the namespaces of the comma-separated
// WATCH_NAMESPACE, none when it is empty: every namespace is watched then.
func watchNamespaces() []string {
	var namespaces []string
	for ns := range strings.SplitSeq(os.Getenv("WATCH_NAMESPACE"), ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			namespaces = append(namespaces, ns)
		}
	}
	return namespaces
}
