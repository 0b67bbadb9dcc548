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

package main

import (
	"fmt"
	"strconv"
)

// memoryLimitEnv names the variable through which the manager's Deployment
// passes the container's memory limit, in bytes (a resourceFieldRef).
const memoryLimitEnv = "MEMORY_LIMIT"

// goMemoryLimit returns the soft memory limit for the Go runtime: 90% of
// the container's memory limit, so that the garbage collector works harder
// before the kernel's OOM killer steps in, and leaves room for what is not
// Go heap. It returns 0 when the limit is not known, or when GOMEMLIMIT,
// which the runtime reads itself, is set.
func goMemoryLimit(getenv func(string) string) (int64, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	value := getenv(memoryLimitEnv)
	if value == "" {
		return 0, nil
	}
	limit, err := strconv.ParseInt(value, 10, 64)
	if err != nil || limit <= 0 {
		return 0, fmt.Errorf("%s must be a number of bytes, not %q", memoryLimitEnv, value)
	}
	return limit / 10 * 9, nil
}
