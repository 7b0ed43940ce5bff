/**
 * The deployment files, checked offline: `docker-compose.yml` with a real compose parser
 * (Debian's `docker-compose config`), the Kubernetes manifests against the Kubernetes OpenAPI
 * schemas (npm `kubernetes-models`) plus our own cross-checks (images, names that must match,
 * ports, the job config), and the Dockerfiles' COPY sources. Each check is also run on a
 * broken copy to show that it fails. Without docker-compose installed the compose checks are
 * skipped, unless DPTRAIN_REQUIRE_COMPOSE=1 (CI) makes that a failure.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { checkManifests, loadManifests, type Manifest } from './deploy-lint.js';
import { ROOT } from './helpers.js';

const HAVE_COMPOSE = spawnSync('docker-compose', ['version']).status === 0;
const REQUIRED = process.env['DPTRAIN_REQUIRE_COMPOSE'] === '1';
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');

function compose(file: string, profiles: string[]): { status: number | null; out: string } {
  const args = ['-f', file, ...profiles.flatMap((p) => ['--profile', p]), 'config', '-q'];
  const r = spawnSync('docker-compose', args, { encoding: 'utf8', cwd: ROOT });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

type ComposeFile = { services: Record<string, Record<string, unknown>> };

/** A changed copy of docker-compose.yml in a temp folder (relative paths there need not exist for `config`). */
function brokenCompose(change: (c: ComposeFile) => void): string {
  const c = parseYaml(readFileSync(COMPOSE_FILE, 'utf8')) as ComposeFile;
  change(c);
  const file = join(mkdtempSync(join(tmpdir(), 'dptrain-compose-')), 'docker-compose.yml');
  writeFileSync(file, stringify(c, { version: '1.1' })); // YAML 1.1 as compose reads it: 'no' stays a string
  return file;
}

describe.skipIf(!HAVE_COMPOSE && !REQUIRED)('docker-compose.yml, parsed by docker-compose', { timeout: 300_000 }, () => {
  it('docker-compose is installed (.ci/run installs Debian\'s package)', () => {
    expect(HAVE_COMPOSE).toBe(true);
  });

  it('accepts the file with the GPU profile, the WebGPU profile, the CPU profile and all', () => {
    for (const profiles of [['gpu'], ['webgpu'], ['cpu'], ['gpu', 'webgpu', 'cpu']]) {
      const r = compose(COMPOSE_FILE, profiles);
      expect(r.status, `profiles ${profiles.join(',')}: ${r.out}`).toBe(0);
    }
  });

  it('rejects replicas: "two", a service without an image, and an unknown key', () => {
    const cases: [string, (c: ComposeFile) => void, RegExp][] = [
      ['replicas: "two"', (c) => ((c.services['worker']!['deploy'] as Record<string, unknown>)['replicas'] = 'two'), /replicas/],
      ['no image', (c) => delete c.services['prometheus']!['image'], /prometheus has neither an image nor a build context/],
      ['unknown key', (c) => (c.services['coordinator']!['comand'] = ['x']), /comand/],
    ];
    for (const [what, change, message] of cases) {
      const r = compose(brokenCompose(change), ['gpu', 'cpu']);
      expect(r.status, what).not.toBe(0);
      expect(r.out, what).toMatch(message);
    }
  });
});

describe('docker-compose.yml, our own checks', () => {
  const c = parseYaml(readFileSync(COMPOSE_FILE, 'utf8')) as ComposeFile;

  it('GPU, WebGPU and CPU workers run the same command except the backend and devices, and Prometheus finds them as "worker"', () => {
    const gpu = c.services['worker']!;
    const webgpu = c.services['worker-webgpu']!;
    const cpu = c.services['worker-cpu']!;
    const withoutBackend = (cmd: unknown): string[] => (cmd as string[]).filter((a) => !a.startsWith('--backend=') && !a.startsWith('--devices='));
    expect(withoutBackend(cpu['command'])).toEqual(withoutBackend(gpu['command']));
    expect(withoutBackend(webgpu['command'])).toEqual(withoutBackend(gpu['command']));
    expect(gpu['command']).toContain('--backend=tensorflow');
    expect(webgpu['command']).toContain('--backend=webgpu');
    expect(cpu['command']).toContain('--backend=native');
    // --devices is the number of GPUs the service reserves (one variable for both), and Vulkan needs the graphics capability
    const reservation = (webgpu['deploy'] as { resources: { reservations: { devices: { count: unknown; capabilities: string[] }[] } } }).resources.reservations.devices[0]!;
    expect(webgpu['command']).toContain('--devices=${DPTRAIN_GPUS_PER_WORKER:-1}');
    expect(reservation.count).toBe('${DPTRAIN_GPUS_PER_WORKER:-1}');
    expect(reservation.capabilities).toContain('graphics');
    expect((webgpu['environment'] as Record<string, string>)['NVIDIA_DRIVER_CAPABILITIES']).toContain('graphics');
    for (const w of [gpu, webgpu, cpu]) {
      expect((w['networks'] as { default: { aliases: string[] } }).default.aliases).toContain('worker');
      expect(w['restart']).toBe('on-failure');
    }
    expect(gpu['deploy']).toMatchObject({ resources: { reservations: { devices: [{ driver: 'nvidia', capabilities: ['gpu'] }] } } });
  });

  it('every bind-mounted file or folder the stack reads is in the repo (data and token are the user\'s)', () => {
    const mounts = Object.values(c.services).flatMap((s) => ((s['volumes'] as string[] | undefined) ?? []).map((v) => v.split(':')[0]!));
    const binds = mounts.filter((m) => m.startsWith('./'));
    expect(binds.length).toBeGreaterThan(0);
    for (const b of binds) if (b !== './deploy/data') expect(existsSync(join(ROOT, b)), b).toBe(true);
    expect(existsSync(join(ROOT, 'deploy/data/.gitignore'))).toBe(true);
    expect(existsSync(join(ROOT, 'deploy/secrets/.gitignore'))).toBe(true);
  });
});

describe('Kubernetes manifests (deploy/k8s), validated offline', () => {
  const manifests = loadManifests(join(ROOT, 'deploy/k8s'));
  // docs/deployment.md has the user create the token Secret with kubectl; no file holds a token.
  const external = { Secret: { 'dptrain-token': ['token'] } };

  it('has the coordinator Job and Service, the worker Deployment, the job ConfigMap, volumes and the data loader', () => {
    const kinds = manifests.map((m) => `${m.doc['kind']}/${(m.doc['metadata'] as { name: string }).name}`).sort();
    expect(kinds).toEqual(
      [
        'ConfigMap/dptrain-job',
        'Deployment/dptrain-worker',
        'Deployment/dptrain-worker-webgpu',
        'Job/dptrain-coordinator',
        'PersistentVolumeClaim/dptrain-data',
        'PersistentVolumeClaim/dptrain-runs',
        'Pod/dptrain-data-loader',
        'Service/dptrain-coordinator',
      ].sort(),
    );
  });

  it('passes the Kubernetes schemas and our cross-checks', () => {
    expect(checkManifests(manifests, external)).toEqual([]);
  });

  it('tensorflow workers ask for one GPU each; webgpu workers for as many GPUs as --devices, with the graphics capability', () => {
    const container = (deployment: string) =>
      (find(manifests, 'Deployment', deployment) as { spec: { template: { spec: { containers: { args: string[]; env?: { name: string; value: string }[]; resources: { limits: Record<string, unknown> } }[] } } } }).spec.template.spec.containers[0]!;
    const cuda = container('dptrain-worker');
    expect(cuda.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(cuda.args).toContain('--backend=tensorflow');
    const webgpu = container('dptrain-worker-webgpu');
    expect(webgpu.args).toContain('--backend=webgpu');
    expect(webgpu.args).toContain(`--devices=${webgpu.resources.limits['nvidia.com/gpu']}`);
    expect(webgpu.env?.find((e) => e.name === 'NVIDIA_DRIVER_CAPABILITIES')?.value).toContain('graphics');
  });

  const broken: [string, (docs: Manifest[]) => void, RegExp][] = [
    ['replicas: "two"', (docs) => (find(docs, 'Deployment', 'dptrain-worker')['spec']['replicas'] = 'two'), /Deployment\/dptrain-worker.*replicas must be integer/],
    ['--devices other than the GPUs the pod asks for', (docs) => {
        const container = find(docs, 'Deployment', 'dptrain-worker-webgpu')['spec']['template']['spec']['containers'][0];
        container['args'] = container['args'].map((a: string) => (a.startsWith('--devices=') ? '--devices=3' : a));
      }, /--devices=3 runs 3 device process\(es\), but the container's nvidia.com\/gpu limit is 2/],
    ['a container without an image', (docs) => delete containers(docs, 'Job')[0]!['image'], /Job\/dptrain-coordinator: container coordinator has no image/],
    ['workers connecting to a Service that does not exist', (docs) => (find(docs, 'Service')['metadata']['name'] = 'trainer'), /connect.*dptrain-coordinator.*no Service/],
    ['a mount of an undefined volume', (docs) => (find(docs, 'Job')['spec']['template']['spec']['volumes'] = []), /volumeMount job.*no volume/],
    ['a job config with an unknown key', (docs) => (find(docs, 'ConfigMap')['data']['job.yaml'] += 'epochz: 3\n'), /ConfigMap\/dptrain-job: job.yaml.*epochz/],
    ['a token file from a Secret nobody creates', (docs) => (find(docs, 'Deployment', 'dptrain-worker')['spec']['template']['spec']['volumes'][0]['secret']['secretName'] = 'token'), /Secret token, which no manifest defines/],
    ['a wrong metrics port annotation', (docs) => (find(docs, 'Deployment', 'dptrain-worker')['spec']['template']['metadata']['annotations']['prometheus.io/port'] = '9999'), /prometheus.io\/port 9999/],
  ];
  for (const [what, change, message] of broken) {
    it(`fails on ${what}`, () => {
      const docs = structuredClone(manifests);
      change(docs);
      expect(checkManifests(docs, external).join('\n')).toMatch(message);
    });
  }
});

describe('Dockerfiles', () => {
  for (const name of ['Dockerfile', 'Dockerfile.gpu', 'Dockerfile.webgpu']) {
    const text = readFileSync(join(ROOT, 'deploy', name), 'utf8');
    it(`${name}: every COPY source from the build context exists, and the image runs as a non-root user`, () => {
      const sources = [...text.matchAll(/^COPY (?!--from)(.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/).slice(0, -1));
      expect(sources.length).toBeGreaterThan(3);
      for (const s of sources) expect(existsSync(join(ROOT, s)), `${name}: COPY ${s}`).toBe(true);
      expect(text).toMatch(/^USER node$/m);
      expect(text).toMatch(/npm ci --omit=dev/);
    });
    it(`${name}: the build stage copies every folder and file tsconfig.build.json compiles (but the benchmarks)`, () => {
      const include = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include.filter((p) => p !== 'bench');
      for (const p of include) expect(text, `${name}: COPY ${p}`).toMatch(new RegExp(`^COPY ${p.replace('.', '\\.')} ${p.replace('.', '\\.')}$`, 'm'));
    });
  }

  it('Dockerfile.webgpu: Mesa from bookworm-backports (Dawn refuses 22.3), the Vulkan loader, the graphics capability', () => {
    const text = readFileSync(join(ROOT, 'deploy/Dockerfile.webgpu'), 'utf8');
    expect(text).toMatch(/bookworm-backports main/);
    expect(text).toMatch(/-t bookworm-backports mesa-vulkan-drivers/);
    expect(text).toMatch(/libvulkan1/);
    expect(text).toMatch(/NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics/);
  });

  it('Dockerfile.gpu: CUDA 11.2 + cuDNN 8 base and the tfjs-node-gpu version package.json pins', () => {
    const text = readFileSync(join(ROOT, 'deploy/Dockerfile.gpu'), 'utf8');
    expect(text).toMatch(/^FROM nvidia\/cuda:11\.2\.\d+-cudnn8-runtime/m);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };
    const wanted = pkg.optionalDependencies['@tensorflow/tfjs-node-gpu']!.replace(/^\^/, '');
    expect(text).toContain(`@tensorflow/tfjs-node-gpu@${wanted}`);
  });

  it('every image carries onnxruntime-node from the lockfile, installed without its install script (the native backend)', () => {
    for (const name of ['Dockerfile', 'Dockerfile.gpu', 'Dockerfile.webgpu']) {
      const text = readFileSync(join(ROOT, 'deploy', name), 'utf8');
      expect(text, name).toMatch(/^RUN npm ci --ignore-scripts --no-audit --no-fund/m);
      for (const pkg of ['onnxruntime-node', 'onnxruntime-common']) expect(text, name).toContain(`COPY --from=build /app/node_modules/${pkg} node_modules/${pkg}`);
    }
  });

  it('.dockerignore keeps node_modules, dist, runs and secrets out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', 'dist', 'runs', 'deploy/secrets', 'deploy/data']) expect(ignored).toContain(p);
  });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function find(docs: Manifest[], kind: string, name?: string): any {
  return docs.find((m) => m.doc['kind'] === kind && (name === undefined || (m.doc['metadata'] as { name: string }).name === name))!.doc;
}

function containers(docs: Manifest[], kind: string): Record<string, unknown>[] {
  return find(docs, kind).spec.template.spec.containers as Record<string, unknown>[];
}
