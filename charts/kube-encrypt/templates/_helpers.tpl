{{/* Labels of every object: the kustomize base's, plus Helm's own two. */}}
{{- define "kube-encrypt.labels" -}}
app.kubernetes.io/name: kube-encrypt
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The selector labels of one component (never Helm's: selectors are immutable). */}}
{{- define "kube-encrypt.selector" -}}
app.kubernetes.io/name: kube-encrypt
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "kube-encrypt.image" -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end }}

{{- define "kube-encrypt.selfSigned" -}}
{{- if eq .Values.certificates.mode "self-signed" }}true{{ else if eq .Values.certificates.mode "cert-manager" }}{{ else }}{{ fail (printf "certificates.mode must be self-signed or cert-manager, not %q" .Values.certificates.mode) }}{{ end }}
{{- end }}
