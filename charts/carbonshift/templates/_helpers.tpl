{{/* Names, labels and small shared snippets. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "carbonshift.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The resource name prefix: fullnameOverride, the release name if it contains the chart name, or <release>-<chart>. */}}
{{- define "carbonshift.fullname" -}}
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

{{/* Cluster-scoped objects (ClusterRole, ClusterRoleBinding) carry the namespace too, so that two releases of the same name in different namespaces never collide. */}}
{{- define "carbonshift.clusterScopedName" -}}
{{- printf "%s-%s" (include "carbonshift.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "carbonshift.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "carbonshift.selectorLabels" -}}
app.kubernetes.io/name: {{ include "carbonshift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "carbonshift.labels" -}}
helm.sh/chart: {{ include "carbonshift.chart" . }}
{{ include "carbonshift.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: carbonshift
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "carbonshift.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "carbonshift.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag or repository@digest; the tag defaults to the chart's appVersion. */}}
{{- define "carbonshift.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The operator settings file (camelCase keys of carbonshift.controller.settings.OperatorSettings). */}}
{{- define "carbonshift.settings" -}}
{{- $s := deepCopy .Values.settings }}
{{- $_ := set $s "namespace" .Release.Namespace }}
{{- /* Always served: the probes use the same port (metrics.enabled only decides the Service). */}}
{{- $_ := set $s "metricsPort" (int .Values.metrics.port) }}
{{- toYaml $s }}
{{- end }}

{{/* All Secret items from values, member kubeconfigs first. */}}
{{- define "carbonshift.secretNames" -}}
{{- $names := list }}
{{- range concat .Values.secrets.memberKubeconfigs .Values.secrets.providerCredentials }}
{{- $names = append $names .name }}
{{- end }}
{{- toJson ($names | uniq) }}
{{- end }}
