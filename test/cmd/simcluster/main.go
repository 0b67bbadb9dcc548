// Command simcluster runs a simulated Kubernetes cluster in the foreground: a
// real control plane with fake nodes played by kwok. It prints one line when
// the cluster is ready and stops every component on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"example.com/memcached-operator/test/internal/simcluster"
)

func main() {
	var opts simcluster.Options
	var kubeconfig string
	flag.StringVar(&opts.BinDir, "bin-dir", os.Getenv("CONTROL_PLANE_DIR"),
		"Directory of the control-plane binaries built by hack/build-control-plane.sh (default $CONTROL_PLANE_DIR).")
	flag.StringVar(&opts.DataDir, "data-dir", "", "Directory for the cluster's state and logs (default: a temporary directory, removed on exit).")
	flag.IntVar(&opts.Nodes, "nodes", 3, "Number of fake nodes.")
	flag.StringVar(&kubeconfig, "kubeconfig", "simcluster.kubeconfig", "Where to write the administrator's kubeconfig.")
	flag.Parse()

	if err := run(opts, kubeconfig); err != nil {
		fmt.Fprintf(os.Stderr, "simcluster: %v\n", err)
		os.Exit(1)
	}
}

func run(opts simcluster.Options, kubeconfig string) error {
	if opts.BinDir == "" {
		return fmt.Errorf("--bin-dir is required: run 'hack/build-control-plane.sh' and pass the directory it prints")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	cluster, err := simcluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("Stopping the simulated cluster")
		if err := cluster.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "simcluster: %v\n", err)
		}
	}()

	kubeconfig, err = filepath.Abs(kubeconfig)
	if err != nil {
		return err
	}
	if err := simcluster.WriteKubeconfig(kubeconfig, cluster.Config, "admin"); err != nil {
		return err
	}
	fmt.Printf("Simulated cluster ready in %.1fs with %d nodes: export KUBECONFIG=%s (logs in %s)\n",
		time.Since(start).Seconds(), opts.Nodes, kubeconfig, filepath.Join(cluster.DataDir, "logs"))

	<-ctx.Done()
	return nil
}
