{{- /* One group-version: its kinds first, then the types they use, by name. */ -}}
{{- define "gvDetails" -}}
{{- $gv := . }}
## {{ $gv.GroupVersionString }}
{{- with $gv.Doc }}

{{ template "prose" . }}
{{- end }}
{{- if $gv.Kinds }}

Resource types:
{{- range $gv.SortedKinds }}
- {{ $gv.TypeForKind . | markdownRenderTypeLink }}
{{- end }}
{{- end }}
{{- range $gv.SortedKinds }}
{{ template "type" ($gv.TypeForKind .) }}
{{- end }}
{{- range $gv.SortedTypes }}
{{- if not .GVK }}
{{ template "type" . }}
{{- end }}
{{- end }}
{{- end -}}
