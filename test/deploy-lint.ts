/**
 * Offline checks of the Kubernetes manifests in deploy/k8s: each object against the Kubernetes
 * OpenAPI schema (npm `kubernetes-models`, no API server needed), then what a schema cannot
 * see: every container has an image and runs a script that exists, mounts name defined
 * volumes, referenced ConfigMaps / Secrets / PVCs exist, the workers' --connect address is a
 * Service port, the scrape annotations name a container port, the token file is in the mounted
 * Secret, and the job config passes dptrain's own config schema.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { ConfigMap, PersistentVolumeClaim, Pod, Secret, Service } from 'kubernetes-models/v1';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { validateConfig } from '../shared/config/load.js';
import { ROOT } from './helpers.js';

export interface Manifest {
  file: string;
  doc: Record<string, unknown>;
}

type Validatable = { validate(): void };
const MODELS: Record<string, new (data: never) => Validatable> = {
  'batch/v1 Job': Job,
  'apps/v1 Deployment': Deployment,
  'v1 Service': Service,
  'v1 ConfigMap': ConfigMap,
  'v1 Secret': Secret,
  'v1 PersistentVolumeClaim': PersistentVolumeClaim,
  'v1 Pod': Pod,
};

/** Objects the user creates by hand (never a file with a secret in it): kind -> name -> keys. */
export type External = Record<string, Record<string, string[]>>;

export function loadManifests(dir: string): Manifest[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(dir, file), 'utf8'))
        .map((d) => d.toJS() as Record<string, unknown> | null)
        .filter((doc): doc is Record<string, unknown> => doc !== null)
        .map((doc) => ({ file, doc })),
    );
}

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string }[];
  resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
}
interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers: Container[]; volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string }; persistentVolumeClaim?: { claimName: string } }[] };
}

/** The pod a Job or Deployment makes, or a bare Pod. */
function podTemplate(m: Manifest): PodTemplate | undefined {
  if (m.doc['kind'] === 'Pod') return m.doc as unknown as PodTemplate;
  return (m.doc['spec'] as { template?: PodTemplate } | undefined)?.template;
}

const name = (m: Manifest): string => `${m.doc['kind']}/${(m.doc['metadata'] as { name?: string } | undefined)?.name}`;

/** Every problem found, one line each naming the file and object; [] when all is well. */
export function checkManifests(manifests: Manifest[], external: External = {}): string[] {
  const problems: string[] = [];
  const byKind = (kind: string): Manifest[] => manifests.filter((m) => m.doc['kind'] === kind);
  const names = (kind: string): Set<string> => new Set([...byKind(kind).map((m) => (m.doc['metadata'] as { name: string }).name), ...Object.keys(external[kind] ?? {})]);
  const secretKeys = (secretName: string): string[] => {
    const doc = byKind('Secret').find((s) => (s.doc['metadata'] as { name: string }).name === secretName)?.doc;
    return doc ? Object.keys({ ...(doc['data'] as object), ...(doc['stringData'] as object) }) : (external['Secret']?.[secretName] ?? []);
  };

  for (const m of manifests) {
    const Model = MODELS[`${m.doc['apiVersion']} ${m.doc['kind']}`];
    if (!Model) {
      problems.push(`${m.file}: ${name(m)}: no schema for apiVersion ${String(m.doc['apiVersion'])}`);
      continue;
    }
    try {
      new Model(structuredClone(m.doc) as never).validate();
    } catch (err) {
      const errors = (err as { errors?: { instancePath: string; message: string }[] }).errors;
      const detail = errors ? errors.map((e) => `${e.instancePath.slice(1).replaceAll('/', '.')} ${e.message}`).join('; ') : (err as Error).message;
      problems.push(`${m.file}: ${name(m)}: ${detail}`);
    }
  }

  const services = byKind('Service').map((m) => m.doc as { metadata: { name: string }; spec: { selector?: Record<string, string>; ports?: { port: number; targetPort?: string | number }[] } });
  const workloads = [...byKind('Job'), ...byKind('Deployment'), ...byKind('Pod')];
  for (const m of workloads) {
    const where = `${m.file}: ${name(m)}`;
    const template = podTemplate(m);
    if (!template?.spec?.containers) continue; // the schema check has reported it
    const volumes = new Map((template.spec.volumes ?? []).map((v) => [v.name, v]));
    for (const v of volumes.values()) {
      if (v.configMap && !names('ConfigMap').has(v.configMap.name)) problems.push(`${where}: volume ${v.name} uses ConfigMap ${v.configMap.name}, which no manifest defines`);
      if (v.secret && !names('Secret').has(v.secret.secretName)) problems.push(`${where}: volume ${v.name} uses Secret ${v.secret.secretName}, which no manifest defines`);
      if (v.persistentVolumeClaim && !names('PersistentVolumeClaim').has(v.persistentVolumeClaim.claimName)) problems.push(`${where}: volume ${v.name} uses PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}, which no manifest defines`);
    }
    const containerPorts = template.spec.containers.flatMap((c) => c.ports ?? []);
    for (const c of template.spec.containers) {
      if (!c.image) problems.push(`${where}: container ${c.name} has no image`);
      const script = c.args?.[0]; // run by the image's entrypoint, node, unless `command` replaces it
      if (!c.command && (!script || !existsSync(join(ROOT, script)))) problems.push(`${where}: container ${c.name} runs ${script ?? '(no args)'}, which is not in the image`);
      for (const mount of c.volumeMounts ?? []) if (!volumes.has(mount.name)) problems.push(`${where}: volumeMount ${mount.name} names no volume of the pod`);
      const flag = (f: string): string | undefined => c.args?.find((a) => a.startsWith(`--${f}=`))?.slice(f.length + 3);
      const connect = flag('connect');
      if (connect) {
        const url = new URL(connect);
        const service = services.find((s) => s.metadata.name === url.hostname);
        if (!service) problems.push(`${where}: --connect ${connect}: host ${url.hostname} is no Service`);
        else if (!(service.spec.ports ?? []).some((p) => p.port === Number(url.port))) problems.push(`${where}: --connect ${connect}: Service ${url.hostname} has no port ${url.port}`);
      }
      const tokenFile = flag('token-file');
      if (tokenFile) {
        const mount = (c.volumeMounts ?? []).find((vm) => tokenFile.startsWith(`${vm.mountPath}/`));
        const secret = mount && volumes.get(mount.name)?.secret;
        const key = mount && tokenFile.slice(mount.mountPath.length + 1);
        if (!secret || !key || !secretKeys(secret.secretName).includes(key)) problems.push(`${where}: --token-file ${tokenFile} is not a key of a mounted Secret`);
      }
      const devices = flag('devices');
      if (devices !== undefined) {
        const wanted = /^\d+$/.test(devices) ? Number(devices) : devices.split(',').length;
        const gpus = (c.resources?.limits as Record<string, unknown> | undefined)?.['nvidia.com/gpu'];
        if (Number(gpus) !== wanted) problems.push(`${where}: --devices=${devices} runs ${wanted} device process(es), but the container's nvidia.com/gpu limit is ${gpus ?? 'unset'}`);
      }
      const metricsPort = flag('metrics-listen')?.split(':').pop();
      const annotated = template.metadata?.annotations?.['prometheus.io/port'];
      if (annotated !== undefined && annotated !== metricsPort) problems.push(`${where}: prometheus.io/port ${annotated} is not the --metrics-listen port ${metricsPort}`);
      if (annotated !== undefined && !containerPorts.some((p) => String(p.containerPort) === annotated)) problems.push(`${where}: prometheus.io/port ${annotated} is not a container port`);
    }
  }

  for (const s of services) {
    const where = `Service/${s.metadata.name}`;
    const selector = Object.entries(s.spec.selector ?? {});
    const pods = workloads
      .map(podTemplate)
      .filter((t): t is PodTemplate => !!t && selector.every(([k, v]) => t.metadata?.labels?.[k] === v));
    if (pods.length === 0) {
      problems.push(`${where}: its selector matches no pod template`);
      continue;
    }
    const portNames = new Set(pods.flatMap((t) => t.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name))));
    for (const p of s.spec.ports ?? []) {
      if (typeof p.targetPort === 'string' && !portNames.has(p.targetPort)) problems.push(`${where}: targetPort ${p.targetPort} is no named port of its pods`);
    }
  }

  for (const m of byKind('ConfigMap')) {
    for (const [key, text] of Object.entries((m.doc['data'] as Record<string, string> | undefined) ?? {})) {
      if (!key.endsWith('.yaml')) continue;
      try {
        validateConfig(parseYaml(text), `${name(m)}: ${key}`);
      } catch (err) {
        problems.push(`${m.file}: ${(err as Error).message}`);
      }
    }
  }
  return problems;
}
