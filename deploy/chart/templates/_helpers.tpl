{{/* The chart's name. */}}
{{- define "chartyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, used for every object. */}}
{{- define "chartyard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "chartyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chartyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chartyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chartyard.labels" -}}
helm.sh/chart: {{ include "chartyard.chart" . }}
{{ include "chartyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "chartyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chartyard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The number of pods: replicaCount, else 1 (filesystem) or 2 (s3). The filesystem mode
keeps its data on one volume that only one server may use, so it refuses more.
*/}}
{{- define "chartyard.replicas" -}}
{{- $mode := .Values.storage.mode }}
{{- if eq $mode "filesystem" }}
{{- $replicas := int (default 1 .Values.replicaCount) }}
{{- if gt $replicas 1 }}
{{- fail (printf "storage.mode=filesystem runs exactly one replica (one server owns the volume), but replicaCount=%d: set replicaCount to 1, or use storage.mode=s3 to run several replicas" $replicas) }}
{{- end }}
{{- 1 }}
{{- else if eq $mode "s3" }}
{{- int (default 2 .Values.replicaCount) }}
{{- else }}
{{- fail (printf "storage.mode must be filesystem or s3, not %q" $mode) }}
{{- end }}
{{- end }}

{{/* A duration of the http block in whole seconds (rounded up): (dict "key" "shutdowngrace"
"value" .Values.http.shutdowngrace "default" "30s"). */}}
{{- define "chartyard.durationSeconds" -}}
{{- $text := toString (default .default .value) }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)?$" $text) }}
{{- fail (printf "http.%s: %q is not a duration (use seconds or a number with ms, s, m or h, e.g. 30s)" .key $text) }}
{{- end }}
{{- $number := regexReplaceAll "(ms|s|m|h)$" $text "" }}
{{- $unit := trimPrefix $number $text }}
{{- $factor := get (dict "" 1.0 "s" 1.0 "ms" 0.001 "m" 60.0 "h" 3600.0) $unit }}
{{- ceil (mulf (float64 $number) $factor) | int }}
{{- end }}

{{/* Whether /metrics is served on its own port. */}}
{{- define "chartyard.metricsListener" -}}
{{- if and .Values.metrics.enabled .Values.metrics.listener.enabled }}true{{ end }}
{{- end }}

{{/* A probe from values, speaking HTTPS when the server does. */}}
{{- define "chartyard.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if and .root.Values.tls.enabled (hasKey $probe "httpGet") }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
