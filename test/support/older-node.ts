// A Node binary on this machine whose OpenSSL predates 3.5 (the machine's own Node 20): the suites that
// run the agent on it are skipped where there is none. The image and CI run Node 24; a standalone agent
// may run on an older Node, where OpenSSL lacks the post-quantum groups and differs in its errors.
import { execFileSync } from 'node:child_process';

export function olderNode(): string | undefined {
  for (const node of ['/usr/bin/node', '/usr/local/bin/node']) {
    try {
      const version = execFileSync(node, ['-p', 'process.versions.openssl'], { encoding: 'utf8' });
      const [major = 0, minor = 0] = version.trim().split('.').map(Number);
      if (major < 3 || (major === 3 && minor < 5)) return node;
    } catch {
      // not there
    }
  }
  return undefined;
}
