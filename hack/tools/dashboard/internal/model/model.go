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

// Package model reads the Grafana dashboard JSON model back, for the tests of
// the dashboard and for the picture of it.
package model

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Dashboard is the part of Grafana's dashboard JSON model that the tests and
// the picture read back.
type Dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// Variable is a variable of the dashboard.
type Variable struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query any    `json:"query"`
}

// Panel is a panel of the dashboard.
type Panel struct {
	ID          int    `json:"id"`
	Title       string `json:"title"`
	Type        string `json:"type"`
	Description string `json:"description"`
	GridPos     struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string   `json:"unit"`
			Min  *float64 `json:"min"`
			Max  *float64 `json:"max"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []Target `json:"targets"`
}

// Target is a query of a panel.
type Target struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
}

// Parse reads the dashboard JSON model in data.
func Parse(data []byte) (*Dashboard, error) {
	var m Dashboard
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding the dashboard: %w", err)
	}
	return &m, nil
}

// Expand replaces the dashboard's variables in expr with the values given,
// and Grafana's $__rate_interval with rateInterval, which makes expr a
// PromQL expression Prometheus can evaluate.
func Expand(expr string, values map[string]string, rateInterval string) string {
	pairs := make([]string, 0, 2+4*len(values))
	pairs = append(pairs, "$__rate_interval", rateInterval)
	for name, value := range values {
		pairs = append(pairs, "${"+name+"}", value, "$"+name, value)
	}
	return strings.NewReplacer(pairs...).Replace(expr)
}
