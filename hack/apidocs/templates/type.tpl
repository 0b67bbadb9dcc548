{{- /*
One type: its doc, where it appears, the validations and validation rules
of the whole type, then a table of its fields, or the values of an
enumeration.
*/ -}}
{{- define "type" -}}
{{- $type := . -}}
{{- if markdownShouldRenderType $type }}
### {{ $type.Name }}
{{- if $type.IsAlias }}

Underlying type: {{ template "typeRef" $type.UnderlyingType }}
{{- end }}
{{- if $type.Doc }}

{{ template "prose" $type.Doc }}
{{- end }}
{{- if $type.References }}

Appears in: {{ range $i, $ref := $type.SortedReferences }}{{ if $i }}, {{ end }}{{ markdownRenderTypeLink $ref }}{{ end }}
{{- end }}
{{- $count := 0 }}
{{- range $name, $_ := $type.Markers }}
{{- if and (hasPrefix "kubebuilder:validation:" $name) (not (has (trimPrefix "kubebuilder:validation:" $name) (list "XValidation" "Required" "Optional" "XIntOrString"))) }}{{ $count = add1 $count }}{{ end }}
{{- end }}
{{- if $count }}

Validation: {{ template "validations" (dict "markers" $type.Markers "table" false) }}.
{{- end }}
{{- with index $type.Markers "kubebuilder:validation:XValidation" }}

Validation rules:
{{- $computed := 0 }}
{{- range . }}
{{- if .Message }}
- {{ template "prose" .Message }}: `{{ .Rule }}`
{{- else }}{{ $computed = add1 $computed }}{{ end }}
{{- end }}
{{- if $computed }}
- {{ template "count" (list $computed "more rule") }}, generated from memcached's option tables and memory needs, with messages computed from the value: api/v1alpha1/zz_generated.extraargs.go has them.
{{- end }}
{{- end }}
{{- if $type.Members }}

| Field | Type | Required | Description |
| --- | --- | --- | --- |
{{- if $type.GVK }}
| `apiVersion` | string | required | `{{ $type.GVK.Group }}/{{ $type.GVK.Version }}` |
| `kind` | string | required | `{{ $type.GVK.Kind }}` |
{{- end }}
{{- range $type.Members }}
| `{{ .Name }}` | {{ template "typeRef" .Type }} | {{ template "required" . }} | {{ template "fieldDescription" . }} |
{{- end }}
{{- end }}
{{- if $type.EnumValues }}

Values:
{{- range $type.EnumValues }}
- `{{ .Name }}`{{ with .Doc }}: {{ template "line" . }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
