{{/*
The chart's name, or nameOverride.
*/}}
{{- define "memcached-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: fullnameOverride, else the release name
when it contains the chart's name, else "<release>-<name>". Truncated so that
names fit the 63 characters of a DNS label.
*/}}
{{- define "memcached-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "memcached-operator.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The name of one object: "<fullname>-<suffix>", the fullname shortened so that
the whole fits 63 characters. Takes a dict: suffix, and context (the root).
*/}}
{{- define "memcached-operator.resourceName" -}}
{{- $fullname := include "memcached-operator.fullname" .context }}
{{- $max := sub 62 (len .suffix) | int }}
{{- printf "%s-%s" ($fullname | trunc $max | trimSuffix "-") .suffix | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The chart label: "<name>-<version>".
*/}}
{{- define "memcached-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The labels that select the operator's pods: those of config/manager's
Deployment, so that a Deployment installed with kubectl can be taken over by
a release in place (a Deployment's selector cannot change).
*/}}
{{- define "memcached-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memcached-operator.name" . }}
control-plane: controller-manager
{{- end }}

{{/*
The selector of the operator's Deployment: selectorLabels; or, when the
release's Deployment exists with the selector the chart gave it before
selectorLabels equalled config/manager's (selectorLabels plus
app.kubernetes.io/instance), that one, since a Deployment's selector cannot
change and the pods carry both. lookup finds nothing without a cluster (helm
template): there the selector is selectorLabels; README.md says how to move
such a release.
*/}}
{{- define "memcached-operator.deploymentSelector" -}}
{{- $selector := include "memcached-operator.selectorLabels" . | fromYaml }}
{{- $old := merge (dict "app.kubernetes.io/instance" .Release.Name) $selector }}
{{- $current := lookup "apps/v1" "Deployment" .Release.Namespace (include "memcached-operator.resourceName" (dict "suffix" "controller-manager" "context" .)) }}
{{- if and $current (eq (toJson (($current.spec).selector).matchLabels) (toJson $old)) }}
{{- $selector = $old }}
{{- end }}
{{- toYaml $selector }}
{{- end }}

{{/*
The labels of every object of the chart.
*/}}
{{- define "memcached-operator.labels" -}}
app.kubernetes.io/name: {{ include "memcached-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "memcached-operator.chart" . }}
{{- end }}

{{/*
The name of the operator's ServiceAccount.
*/}}
{{- define "memcached-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "memcached-operator.resourceName" (dict "suffix" "controller-manager" "context" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator's image: repository@digest when a digest is set, else
repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "memcached-operator.image" -}}
{{- $repository := required "image.repository is required" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository (toString .Values.image.digest) }}
{{- else }}
{{- printf "%s:%s" $repository (toString (default .Chart.AppVersion .Values.image.tag)) }}
{{- end }}
{{- end }}

{{/*
The namespaces to watch, without duplicates; none means every namespace.
*/}}
{{- define "memcached-operator.watchNamespaces" -}}
{{- if and .Values.watchNamespaces (not (kindIs "slice" .Values.watchNamespaces)) }}
{{- fail "watchNamespaces must be a list of namespaces, such as {a,b} with --set ([] for every namespace)" }}
{{- end }}
{{- $namespaces := list }}
{{- range .Values.watchNamespaces }}
{{- $namespace := required "watchNamespaces holds an empty name" . | toString | trim }}
{{- if not $namespace }}
{{- fail "watchNamespaces holds an empty name" }}
{{- end }}
{{- $namespaces = append $namespaces $namespace }}
{{- end }}
{{- $namespaces | uniq | toJson }}
{{- end }}

{{/*
Fails on values the operator would refuse.
*/}}
{{- define "memcached-operator.validate" -}}
{{- if not (has (toString .Values.memcachedPodUID) (list "fixed" "platform" "auto")) }}
{{- fail (printf "memcachedPodUID must be \"fixed\", \"platform\" or \"auto\", not %q" (toString .Values.memcachedPodUID)) }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicas is %d with leaderElection.enabled false: every replica would act at once; enable leader election or run 1 replica" (int .Values.replicas)) }}
{{- end }}
{{- end }}

{{/*
An object of config/, the only hand-written install, as hack/sync-chart.sh
(make manifests) renders it into files/config/<file>.yaml, made the release's:
named "<fullname>-<its name without config/default's namePrefix>" (a CRD keeps
the name its group gives it), in the release namespace when it is namespaced,
with the chart's labels over config/'s. The templates then set what the values
change. Takes a dict: file, and context (the root). Returns YAML: fromYaml it.
*/}}
{{- define "memcached-operator.fromConfig" -}}
{{- $path := printf "files/config/%s.yaml" .file }}
{{- $object := .context.Files.Get $path | fromYaml }}
{{- if not (and $object.kind $object.metadata) }}
{{- fail (printf "%s is not an object of config/: run hack/sync-chart.sh (make manifests)" $path) }}
{{- end }}
{{- $metadata := $object.metadata }}
{{- if ne $object.kind "CustomResourceDefinition" }}
{{- $_ := set $metadata "name" (include "memcached-operator.configName" (dict "name" $metadata.name "context" .context)) }}
{{- end }}
{{- if hasKey $metadata "namespace" }}
{{- $_ := set $metadata "namespace" .context.Release.Namespace }}
{{- end }}
{{- $_ := set $metadata "labels" (merge (include "memcached-operator.labels" .context | fromYaml) ($metadata.labels | default dict)) }}
{{- toYaml $object }}
{{- end }}

{{/*
The release's name of an object named <name> in config/default (with or
without its namePrefix). Takes a dict: name, and context (the root).
*/}}
{{- define "memcached-operator.configName" -}}
{{- include "memcached-operator.resourceName" (dict "suffix" (trimPrefix "memcached-operator-" .name) "context" .context) }}
{{- end }}

{{/*
A (Cluster)RoleBinding of config/, bound to the release's role and its
ServiceAccount. config/ binds every role to the operator's ServiceAccount
only. Takes a dict: file, and context (the root). Returns YAML.
*/}}
{{- define "memcached-operator.bindingFromConfig" -}}
{{- $binding := include "memcached-operator.fromConfig" . | fromYaml }}
{{- if ne (len $binding.subjects) 1 }}
{{- fail (printf "files/config/%s.yaml binds %d subjects; the chart binds the operator's ServiceAccount only" .file (len $binding.subjects)) }}
{{- end }}
{{- $_ := set $binding.roleRef "name" (include "memcached-operator.configName" (dict "name" $binding.roleRef.name "context" .context)) }}
{{- $subject := dict "kind" "ServiceAccount" "name" (include "memcached-operator.serviceAccountName" .context) "namespace" .context.Release.Namespace }}
{{- $_ := set $binding "subjects" (list $subject) }}
{{- toYaml $binding }}
{{- end }}
