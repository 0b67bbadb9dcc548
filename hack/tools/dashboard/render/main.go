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

// Command render draws a picture of the Grafana dashboard without Grafana:
// it runs two real memcached servers and memcached_exporter on loopback,
// drives a bounded load of gets and sets against them, scrapes the exporter
// into Prometheus' TSDB as Prometheus would (with the labels the
// ServiceMonitor adds), evaluates each panel's queries with Prometheus'
// PromQL engine, and draws the results as line charts in the dashboard's grid:
//
//	go run ./render -memcached "$(hack/fetch-memcached.sh --print-path)" \
//		-exporter <memcached_exporter> -o ../../../docs/images/dashboard.png
//
// `make dashboard-image` runs it. The panels of the operator's own gauges
// are left empty, as no operator runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"example.com/memcached-operator/hack/tools/dashboard/internal/model"
)

// options are the command's flags.
type options struct {
	dashboard      string
	out            string
	memcached      string
	exporter       string
	duration       time.Duration
	scrapeInterval time.Duration
	opsPerSecond   int
}

func main() {
	var o options
	flag.StringVar(&o.dashboard, "dashboard", "../../../config/components/dashboard/memcached-dashboard.json",
		"the dashboard's JSON model")
	flag.StringVar(&o.out, "o", "", "the PNG file to write (required)")
	flag.StringVar(&o.memcached, "memcached", "", "the memcached binary (required)")
	flag.StringVar(&o.exporter, "exporter", "", "the memcached_exporter binary (required)")
	flag.DurationVar(&o.duration, "duration", 3*time.Minute, "how long to run the load and scrape")
	flag.DurationVar(&o.scrapeInterval, "scrape-interval", 5*time.Second, "the interval between scrapes")
	flag.IntVar(&o.opsPerSecond, "ops", 1000, "the commands a second of the load at its peak")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

// run records the series, evaluates the panels and draws them.
func run(ctx context.Context, o options) error {
	if o.out == "" || o.memcached == "" || o.exporter == "" {
		return fmt.Errorf("-o, -memcached and -exporter are required")
	}
	data, err := os.ReadFile(o.dashboard)
	if err != nil {
		return fmt.Errorf("reading the dashboard: %w", err)
	}
	d, err := model.Parse(data)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "dashboard-render-")
	if err != nil {
		return fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	rec, err := record(ctx, o, dir)
	if err != nil {
		return err
	}
	defer rec.db.Close()
	results, err := evaluate(ctx, rec, d.Panels)
	if err != nil {
		return err
	}
	return drawPicture(o.out, d, results, rec)
}
