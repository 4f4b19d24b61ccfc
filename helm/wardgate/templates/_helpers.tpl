{{/*
Names and labels shared by every template.
*/}}

{{/* The chart's name, cut to 63 characters: Kubernetes names are DNS labels. */}}
{{- define "wardgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; the release name alone when it already contains the chart's. */}}
{{- define "wardgate.fullname" -}}
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

{{- define "wardgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wardgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wardgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "wardgate.labels" -}}
helm.sh/chart: {{ include "wardgate.chart" . }}
{{ include "wardgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "wardgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wardgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* A digest pins the exact image and wins over the tag. */}}
{{- define "wardgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "wardgate.configMapName" -}}
{{- default (printf "%s-config" (include "wardgate.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* The Secret whose keys become env vars: an existing one, the chart's own, or none (""). */}}
{{- define "wardgate.secretName" -}}
{{- if .Values.secret.existingSecret }}
{{- .Values.secret.existingSecret }}
{{- else if .Values.secret.create }}
{{- include "wardgate.fullname" . }}
{{- end }}
{{- end }}

{{- define "wardgate.claimName" -}}
{{- default (printf "%s-traces" (include "wardgate.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}
