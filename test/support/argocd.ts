// Runs gitops/argocd/health.lua the way Argo CD does (the object as the global `obj`, the script's
// return value as the health), with the real Lua 5.4 interpreter (`lua5.4`, from the Makefile's apt deps).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const SCRIPT = readFileSync(new URL('../../gitops/argocd/health.lua', import.meta.url), 'utf8');

/** A Lua table literal for a JSON value (arrays 1-based, as Argo CD converts them). */
function lua(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `{${value.map(lua).join(', ')}}`;
  const entries = Object.entries(value as Record<string, unknown>).map(
    ([k, v]) => `[${JSON.stringify(k)}] = ${lua(v)}`,
  );
  return `{${entries.join(', ')}}`;
}

export async function argoHealth(obj: unknown): Promise<{ status: string; message: string }> {
  const program = `obj = ${lua(obj)}\nlocal hs = (function()\n${SCRIPT}\nend)()\nio.write(hs.status, "\\n", hs.message or "")`;
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = spawn('lua5.4', ['-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`lua5.4 exited ${code}: ${err}`)),
    );
    child.stdin.end(program);
  });
  const [status = '', ...rest] = stdout.split('\n');
  return { status, message: rest.join('\n') };
}
