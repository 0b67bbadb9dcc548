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

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Environment variables that set a flag that is not given, as an OLM
// Subscription's config.env can: OLM installs the manager with the flags of
// its ClusterServiceVersion, which a Subscription cannot change.
const (
	// memcachedUIDEnv sets --memcached-uid.
	memcachedUIDEnv = "MEMCACHED_UID"
	// metricsCertPathEnv sets --metrics-cert-path, e.g. to where a
	// Subscription's config.volumeMounts mounts a certificate's Secret.
	metricsCertPathEnv = "METRICS_CERT_PATH"
	// memcachedImageEnv and exporterImageEnv set --memcached-image and
	// --exporter-image. They follow OLM's RELATED_IMAGE_ convention: the
	// bundle passes the default images through them, listed in its
	// spec.relatedImages, and a Subscription can point them at a mirror.
	memcachedImageEnv = "RELATED_IMAGE_MEMCACHED"
	exporterImageEnv  = "RELATED_IMAGE_EXPORTER"
)

// flagOrEnv returns the value of a flag when it was given on the command
// line, else the environment variable env when set, else the flag's default.
func flagOrEnv(flagValue string, flagGiven bool, env string, getenv func(string) string) string {
	if v := getenv(env); !flagGiven && v != "" {
		return v
	}
	return flagValue
}

// The UID modes of the memcached pods.
const (
	// uidFixed runs the pods as uid and gid 11211.
	uidFixed = "fixed"
	// uidPlatform sets no uid and leaves it to the platform.
	uidPlatform = "platform"
	// uidAuto is uidPlatform on OpenShift, uidFixed elsewhere.
	uidAuto = "auto"
)

// openShiftSCC is the kind whose API tells an OpenShift cluster, whose
// restricted-v2 SecurityContextConstraints assign the pods' uid.
var openShiftSCC = schema.GroupVersionKind{Group: "security.openshift.io", Version: "v1", Kind: "SecurityContextConstraints"}

// uidMode returns the UID mode and where it comes from ("flag", the
// environment variable's name, or "default"): the --memcached-uid flag when
// it was given on the command line, else MEMCACHED_UID when set, else
// uidFixed. An unknown mode is an error.
func uidMode(flagValue string, flagGiven bool, getenv func(string) string) (mode, source string, err error) {
	switch {
	case flagGiven:
		mode, source = flagValue, "flag"
	case getenv(memcachedUIDEnv) != "":
		mode, source = getenv(memcachedUIDEnv), memcachedUIDEnv
	default:
		mode, source = uidFixed, "default"
	}
	switch mode {
	case uidFixed, uidPlatform, uidAuto:
		return mode, source, nil
	}
	if source == "flag" {
		return "", "", fmt.Errorf("--memcached-uid must be %s, %s or %s, not %q", uidFixed, uidPlatform, uidAuto, mode)
	}
	return "", "", fmt.Errorf("%s must be %s, %s or %s, not %q", memcachedUIDEnv, uidFixed, uidPlatform, uidAuto, mode)
}

// platformAssignsUID tells whether the memcached pods leave their uid to the
// platform in mode: in uidAuto, when the cluster serves OpenShift's
// SecurityContextConstraints API. The lookup is API discovery, which every
// authenticated client may do: it needs no permission of the operator's own.
func platformAssignsUID(mode string, mapper meta.RESTMapper) (bool, error) {
	switch mode {
	case uidFixed:
		return false, nil
	case uidPlatform:
		return true, nil
	case uidAuto:
		_, err := mapper.RESTMapping(openShiftSCC.GroupKind(), openShiftSCC.Version)
		switch {
		case err == nil:
			return true, nil
		case meta.IsNoMatchError(err):
			return false, nil
		default:
			return false, fmt.Errorf("failed to look up the %s API: %w", openShiftSCC.Group, err)
		}
	}
	return false, fmt.Errorf("unknown UID mode %q", mode)
}
