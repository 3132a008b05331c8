{{/* Names, labels and the rendered controller config. */}}

{{- define "pgtoken-rotator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name alone when it already contains the chart name. */}}
{{- define "pgtoken-rotator.fullname" -}}
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

{{- define "pgtoken-rotator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pgtoken-rotator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pgtoken-rotator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pgtoken-rotator.labels" -}}
helm.sh/chart: {{ include "pgtoken-rotator.chart" . }}
{{ include "pgtoken-rotator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: pgtoken-rotator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pgtoken-rotator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pgtoken-rotator.fullname" .) .Values.serviceAccount.name }}
{{- else if .Values.serviceAccount.name }}
{{- .Values.serviceAccount.name }}
{{- else }}
{{- fail "serviceAccount.name is required when serviceAccount.create is false" }}
{{- end }}
{{- end }}

{{- define "pgtoken-rotator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: forced by the value, else when replicaCount > 1. */}}
{{- define "pgtoken-rotator.leaderElection" -}}
{{- $le := .Values.leaderElection.enabled }}
{{- if kindIs "bool" $le }}
{{- ternary "true" "" $le }}
{{- else if gt (int .Values.replicaCount) 1 }}
{{- "true" }}
{{- end }}
{{- end }}

{{/* Drops null values and empty strings from a map, recursively: an empty
     setting means "the controller's default", which leaving it out gives. */}}
{{- define "pgtoken-rotator.prune" -}}
{{- $out := dict }}
{{- range $k, $v := . }}
{{- if kindIs "map" $v }}
{{- $sub := include "pgtoken-rotator.prune" $v | fromYaml }}
{{- if $sub }}
{{- $_ := set $out $k $sub }}
{{- end }}
{{- /* toString: Helm before 3.8 evaluates every argument of "and", and eq of a string
     with a bool or number is an error there */}}
{{- else if and (not (kindIs "invalid" $v)) (ne (toString $v) "") }}
{{- $_ := set $out $k $v }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* The controller's config.yaml: .Values.config plus namespaces. */}}
{{- define "pgtoken-rotator.config" -}}
{{- $cfg := include "pgtoken-rotator.prune" .Values.config | fromYaml }}
{{- $_ := set $cfg "namespaces" (.Values.watchNamespaces | default list) }}
{{- toYaml $cfg }}
{{- end }}

{{/* RBAC rules every mode needs, for the namespaces whose Secrets are managed.
     Mirrors manifests/rbac.yaml (the source of truth; a test compares them). */}}
{{- define "pgtoken-rotator.secretRules" -}}
# Read the Secrets that opt in (the watch is filtered by label on the server),
# and write their owned keys and status annotations with a merge patch.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "patch"]
# Report on the Secret: create an Event, and patch its count when it repeats.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.restart.enabled }}
# restart.enabled: roll the workload named by pgtoken.io/restart after its
# Secret changes (a merge patch of the pod template's annotations).
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["patch"]
{{- end }}
{{- if .Values.perSecretIdentity.enabled }}
# perSecretIdentity.enabled: read the ServiceAccount named by
# pgtoken.io/service-account (its client-id annotation) and request a token
# for it to exchange with Entra ID.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
{{- end }}
{{- end }}
