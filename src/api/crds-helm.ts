// The chart's CRDs are Helm templates generated from the same YAML as crds/ (not a copy in the chart's
// crds/ folder, which Helm installs once and never upgrades or deletes), so that upgrades update them,
// `crds.enabled=false` leaves them to the user and `crds.keep` decides whether uninstall removes them.

/** Lines added under the CRD's `metadata.name`: the chart's labels and, unless crds.keep=false, keep. */
const METADATA = `  labels:
    {{- include "drawbridge.crdLabels" . | nindent 4 }}
  {{- if .Values.crds.keep }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
`;

/** Turns one rendered CRD (crds/*.yaml) into the chart template that renders exactly it, plus metadata. */
export function helmCrdTemplate(crd: string): string {
  // Descriptions quote trait templates such as {{traits.team}}: Go templates must print them verbatim.
  const escaped = crd.replaceAll('{{', '{{ "{{" }}');
  const name = /^metadata:\n {2}name: .*\n/m.exec(escaped);
  if (!name) throw new Error('CRD without metadata.name on its own line');
  const at = name.index + name[0].length;
  return `{{- if .Values.crds.enabled }}\n${escaped.slice(0, at)}${METADATA}${escaped.slice(at)}{{- end }}\n`;
}

export function helmCrdTemplates(crds: Map<string, string>): Map<string, string> {
  return new Map([...crds].map(([file, text]) => [file, helmCrdTemplate(text)]));
}
