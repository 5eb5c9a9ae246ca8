{{/* Names and labels shared by every object of the chart. */}}

{{- define "egs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "egs.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "egs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "egs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: egs
{{- end -}}

{{- define "egs.exporterSelectorLabels" -}}
app.kubernetes.io/name: {{ include "egs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: exporter
{{- end -}}

{{/* The labels the Prometheus' selectors look for: monitoring.labels, plus release when given. */}}
{{- define "egs.monitoringLabels" -}}
{{- $labels := deepCopy .Values.monitoring.labels -}}
{{- with .Values.monitoring.release }}{{ $_ := set $labels "release" . }}{{ end -}}
{{- with $labels }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{/* rules.source, or the one that follows exporter.enabled. */}}
{{- define "egs.rulesSource" -}}
{{- if .Values.rules.source -}}
{{- .Values.rules.source -}}
{{- else if .Values.exporter.enabled -}}
egs
{{- else -}}
dcgm-exporter
{{- end -}}
{{- end -}}

{{/* An image of the chart: `include "egs.image" (list . "exporter")` or `(list . "controlPlane")`. */}}
{{- define "egs.image" -}}
{{- $root := index . 0 -}}
{{- $image := index $root.Values.image (index . 1) -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $root.Values.image.tag) -}}
{{- end -}}

{{- define "egs.controllerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "egs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "egs.apiSelectorLabels" -}}
app.kubernetes.io/name: {{ include "egs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end -}}

{{/* kube-prometheus-stack's Prometheus Service for monitoring.release, named as that chart names it:
its fullname (fullnameOverride, else the release name when it holds the chart name, else
<release>-kube-prometheus-stack), cut to 26 characters, then `-prometheus`. */}}
{{- define "egs.kubePrometheusStackUrl" -}}
{{- $kps := .Values.monitoring.kubePrometheusStack -}}
{{- with .Values.monitoring.release -}}
{{- $full := $kps.fullnameOverride -}}
{{- if not $full -}}
{{- $full = ternary . (printf "%s-kube-prometheus-stack" .) (contains "kube-prometheus-stack" .) -}}
{{- end -}}
{{- printf "http://%s-prometheus.%s:9090" ($full | trunc 26 | trimSuffix "-") $kps.namespace -}}
{{- end -}}
{{- end -}}

{{/* The Prometheus the controller reads: controller.prometheusUrl, else kube-prometheus-stack's. */}}
{{- define "egs.prometheusUrl" -}}
{{- .Values.controller.prometheusUrl | default (include "egs.kubePrometheusStackUrl" .) -}}
{{- end -}}

{{/* The Prometheus arguments, volume mount and volume of the controller and the API (which reads only
the GPU indexes from it): one URL, timeout, CA bundle and TLS setting for both. */}}
{{- define "egs.prometheusArgs" -}}
{{- $p := .Values.controller.prometheus -}}
{{- with include "egs.prometheusUrl" . }}
- --prometheus={{ . }}
{{- end }}
{{- with $p.timeout }}
- --prometheus-timeout={{ . }}
{{- end }}
{{- if or $p.caBundle.configMap $p.caBundle.secret }}
- --prometheus-ca-file=/etc/egs/prometheus-ca/{{ $p.caBundle.key }}
{{- end }}
{{- if $p.insecureSkipVerify }}
- --prometheus-insecure-skip-verify
{{- end }}
{{- end -}}

{{- define "egs.prometheusCAMount" -}}
{{- $ca := .Values.controller.prometheus.caBundle -}}
{{- if or $ca.configMap $ca.secret }}
- name: prometheus-ca
  mountPath: /etc/egs/prometheus-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "egs.prometheusCAVolume" -}}
{{- $ca := .Values.controller.prometheus.caBundle -}}
{{- with $ca.configMap }}
- name: prometheus-ca
  configMap:
    name: {{ . }}
{{- else }}
{{- with $ca.secret }}
- name: prometheus-ca
  secret:
    secretName: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* How the API serves TLS: secret (controller.api.tls.secretName), cert-manager (its CRDs are
installed), generated (a CA and certificate Helm makes, kept across upgrades), or none (insecureHTTP). */}}
{{- define "egs.apiTLSMode" -}}
{{- $tls := .Values.controller.api.tls -}}
{{- if $tls.insecureHTTP -}}none
{{- else if $tls.secretName -}}secret
{{- else if .Capabilities.APIVersions.Has "cert-manager.io/v1" -}}cert-manager
{{- else -}}generated
{{- end -}}
{{- end -}}

{{- define "egs.apiTLSSecret" -}}
{{- .Values.controller.api.tls.secretName | default (printf "%s-api-tls" (include "egs.fullname" .)) -}}
{{- end -}}
