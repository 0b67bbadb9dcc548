{{- /*
Helpers of type.tpl. Text from the Go source goes through "prose" (a
paragraph), "line" (wrapped lines joined) or "cell" (a table cell), so that
"<name>" stays text and "|" does not end a cell.
*/ -}}

{{- define "prose" -}}
{{- trim . | replace "<" "&lt;" | replace ">" "&gt;" | replace "*" "\\*" -}}
{{- end -}}

{{- define "line" -}}
{{- trim . | replace "<" "&lt;" | replace ">" "&gt;" | replace "*" "\\*" | replace "\n\n" "<br><br>" | replace "\n" " " -}}
{{- end -}}

{{- define "cell" -}}
{{- trim . | replace "<" "&lt;" | replace ">" "&gt;" | replace "*" "\\*" | replace "\n\n" "<br><br>" | replace "\n" " " | replace "|" "\\|" -}}
{{- end -}}

{{- /*
A type: local types link to their section, Kubernetes types to the API
reference of the kubernetesVersion in config.yaml. Its anchors name the
API group in full: crd-ref-docs links NetworkPolicyPeer to
"#networkpolicypeer-v1-networking", the reference has it at
"#networkpolicypeer-v1-networking-k8s-io"; Quantity is at
"#quantity-resource-core". It has no section for ResourceList (a map to
Quantity) or IntOrString.
*/ -}}
{{- define "typeRef" -}}
{{- $t := . -}}
{{- if not $t -}}
unknown
{{- else if and (eq $t.Package "k8s.io/apimachinery/pkg/util/intstr") (eq $t.Name "IntOrString") -}}
integer or string
{{- else if and (eq $t.Package "k8s.io/api/core/v1") (eq $t.Name "ResourceList") -}}
map of resource name to {{ markdownRenderTypeLink $t | replace "[ResourceList]" "[Quantity]" | replace "#resourcelist-v1-core" "#quantity-resource-core" }}
{{- else if eq $t.Kind 5 -}}{{- /* slice */ -}}
{{ template "typeRef" $t.UnderlyingType }} array
{{- else if eq $t.Kind 3 -}}{{- /* map */ -}}
map of {{ template "typeRef" $t.KeyType }} to {{ template "typeRef" $t.ValueType }}
{{- else if and (eq $t.Kind 4) $t.UnderlyingType -}}{{- /* pointer */ -}}
{{ template "typeRef" $t.UnderlyingType }}
{{- else -}}
{{- $link := markdownRenderTypeLink $t -}}
{{- if hasPrefix "k8s.io/api/" $t.Package -}}
{{- /* k8s.io/api/<group>/<version>: the groups without ".k8s.io", then the others. */ -}}
{{- $group := index (splitList "/" $t.Package) 2 -}}
{{- $anchors := dict "core" "core" "apps" "apps" "autoscaling" "autoscaling" "batch" "batch" "policy" "policy" "rbac" "rbac-authorization-k8s-io" "flowcontrol" "flowcontrol-apiserver-k8s-io" "apiserverinternal" "internal-apiserver-k8s-io" -}}
{{- $anchor := get $anchors $group | default (printf "%s-k8s-io" $group) -}}
{{- $link = replace (printf "-%s)" $group) (printf "-%s)" $anchor) $link -}}
{{- else if eq $t.Package "k8s.io/apimachinery/pkg/api/resource" -}}
{{- $link = replace "-resource-api)" "-resource-core)" $link -}}
{{- end -}}
{{ $link }}
{{- end -}}
{{- end -}}

{{- /* required or optional, from +required, +optional and their kubebuilder and k8s forms. */ -}}
{{- define "required" -}}
{{- $m := .Markers -}}
{{- if or (index $m "required") (index $m "kubebuilder:validation:Required") (index $m "k8s:required") -}}
required
{{- else if or (index $m "optional") (index $m "kubebuilder:validation:Optional") (index $m "k8s:optional") -}}
optional
{{- end -}}
{{- end -}}

{{- /*
The +kubebuilder:validation markers of (dict "markers" .Markers "table"
bool), separated by "; ": the usual ones in a fixed order, then any other by
name. Left out: XValidation (shown as rules), Required and Optional (the
Required column) and XIntOrString (the type); callers count the others
first. In a table, "|" is escaped even in code.
*/ -}}
{{- define "validations" -}}
{{- $markers := .markers -}}
{{- $table := .table -}}
{{- $order := list "Enum" "Format" "Minimum" "ExclusiveMinimum" "Maximum" "ExclusiveMaximum" "MultipleOf" "MinLength" "MaxLength" "Pattern" "MinItems" "MaxItems" "UniqueItems" "MinProperties" "MaxProperties" -}}
{{- $skip := list "XValidation" "Required" "Optional" "XIntOrString" -}}
{{- $i := 0 -}}
{{- range $n := $order -}}
{{- $values := index $markers (printf "kubebuilder:validation:%s" $n) -}}
{{- if $values -}}
{{ if $i }}; {{ end }}{{ template "validation" (dict "name" $n "value" (last $values) "table" $table) }}
{{- $i = add1 $i -}}
{{- end -}}
{{- end -}}
{{- range $name, $values := $markers -}}
{{- if hasPrefix "kubebuilder:validation:" $name -}}
{{- $n := trimPrefix "kubebuilder:validation:" $name -}}
{{- if not (or (has $n $order) (has $n $skip)) -}}
{{ if $i }}; {{ end }}{{ template "validation" (dict "name" $n "value" (last $values) "table" $table) }}
{{- $i = add1 $i -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "validation" -}}
{{- $n := .name -}}
{{- $v := .value -}}
{{- if hasPrefix "items:" $n -}}
each item {{ template "validation" (dict "name" (trimPrefix "items:" $n) "value" $v "table" .table) }}
{{- else if eq $n "Enum" -}}
one of {{ range $i, $e := $v }}{{ if $i }}, {{ end }}`{{ $e }}`{{ end }}
{{- else if eq $n "Format" -}}
format `{{ $v }}`
{{- else if eq $n "Minimum" -}}
minimum {{ template "number" $v }}
{{- else if eq $n "ExclusiveMinimum" -}}
minimum {{ if $v }}excluded{{ else }}included{{ end }}
{{- else if eq $n "Maximum" -}}
maximum {{ template "number" $v }}
{{- else if eq $n "ExclusiveMaximum" -}}
maximum {{ if $v }}excluded{{ else }}included{{ end }}
{{- else if eq $n "MultipleOf" -}}
multiple of {{ template "number" $v }}
{{- else if eq $n "MinLength" -}}
at least {{ template "count" (list $v "character") }}
{{- else if eq $n "MaxLength" -}}
at most {{ template "count" (list $v "character") }}
{{- else if eq $n "Pattern" -}}
matches `{{ if .table }}{{ toString $v | replace "|" "\\|" }}{{ else }}{{ $v }}{{ end }}`
{{- else if eq $n "MinItems" -}}
at least {{ template "count" (list $v "item") }}
{{- else if eq $n "MaxItems" -}}
at most {{ template "count" (list $v "item") }}
{{- else if eq $n "UniqueItems" -}}
{{ if $v }}no item twice{{ else }}items may repeat{{ end }}
{{- else if eq $n "MinProperties" -}}
at least {{ template "count" (list $v "entry" "entries") }}
{{- else if eq $n "MaxProperties" -}}
at most {{ template "count" (list $v "entry" "entries") }}
{{- else -}}
{{ $n }}{{ if not (kindIs "struct" $v) }}: `{{ $v }}`{{ end }}
{{- end -}}
{{- end -}}

{{- /* (list n "item") gives "1 item" or "2 items"; (list n "entry" "entries") names the plural. */ -}}
{{- define "count" -}}
{{- $n := int64 (index . 0) -}}
{{ $n }} {{ if eq $n 1 }}{{ index . 1 }}{{ else if gt (len .) 2 }}{{ index . 2 }}{{ else }}{{ index . 1 }}s{{ end }}
{{- end -}}

{{- /* A marker's number: 1048576 rather than 1.048576e+06. */ -}}
{{- define "number" -}}
{{- $f := float64 . -}}
{{- if eq $f (float64 (int64 $f)) }}{{ int64 $f }}{{ else }}{{ $f }}{{ end -}}
{{- end -}}

{{- /*
A field's description: its doc comment, its default, its validations and
its validation rules. Rules its type has are left to the type's section.
*/ -}}
{{- define "fieldDescription" -}}
{{- $f := . -}}
{{- $sep := "" -}}
{{- with $f.Doc }}{{ template "cell" . }}{{ $sep = "<br><br>" }}{{ end -}}
{{- with $f.Default }}{{ $sep }}Default: `{{ replace "|" "\\|" . }}`.{{ $sep = "<br><br>" }}{{ end -}}
{{- if $f.Markers -}}
{{- $count := 0 -}}
{{- range $name, $_ := $f.Markers -}}
{{- if and (hasPrefix "kubebuilder:validation:" $name) (not (has (trimPrefix "kubebuilder:validation:" $name) (list "XValidation" "Required" "Optional" "XIntOrString"))) }}{{ $count = add1 $count }}{{ end -}}
{{- end -}}
{{- if $count }}{{ $sep }}Validation: {{ template "validations" (dict "markers" $f.Markers "table" true) }}.{{ $sep = "<br><br>" }}{{ end -}}
{{- $typeRules := list -}}
{{- if $f.Type }}{{ with $f.Type.Markers }}{{ with index . "kubebuilder:validation:XValidation" }}{{ $typeRules = . }}{{ end }}{{ end }}{{ end -}}
{{- range index $f.Markers "kubebuilder:validation:XValidation" -}}
{{- if not (has . $typeRules) -}}
{{ $sep }}Rule: {{ template "cell" .Message }}: `{{ replace "|" "\\|" .Rule }}`{{ $sep = "<br><br>" }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
