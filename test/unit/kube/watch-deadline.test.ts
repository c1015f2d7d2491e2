// A watch must not outlive its connection. Against a real local HTTPS server: every watch asks for
// timeoutSeconds and bookmarks; one that hears nothing for timeoutSeconds plus the grace (a server that
// never answers, or answers and then goes silent, as behind a dropped NAT entry) ends with an error so
// the informer watches again, while a stream that keeps sending is left alone; and a BOOKMARK moves the
// informer's resourceVersion on, so the next watch resumes from it instead of listing again.
import type { ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient, type KubeClientOptions } from '../../../src/kube/client.js';
import type { KubeCredentials } from '../../../src/kube/credentials.js';
import { Informer } from '../../../src/kube/informer.js';
import { type CA, issue, newCA } from '../../k8s/pki.js';

let ca: CA;
let server: https.Server;
const watches: URL[] = [];
let lists = 0;
/** How the server answers each watch, in turn; the last one is repeated. */
let replies: ((res: ServerResponse) => void)[] = [];

beforeAll(async () => {
  ca = await newCA('test-apiserver-ca');
  const serving = await issue(ca, [{ CN: ['kube-apiserver'] }], 'server');
  server = https.createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    const url = new URL(req.url!, 'https://x');
    if (url.searchParams.get('watch') !== 'true') {
      lists++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'SecretList', metadata: { resourceVersion: '1' }, items: [] }));
      return;
    }
    watches.push(url);
    (replies[watches.length - 1] ?? replies.at(-1))!(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterAll(() => {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(resolve));
});

function client(opts: KubeClientOptions = { watchTimeoutSeconds: () => 1, watchGraceMs: 0 }): KubeClient {
  const credentials: KubeCredentials = {
    server: new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`),
    tls: { ca: ca.certPem },
    headers: async () => ({}),
  };
  return new KubeClient(credentials, opts);
}

const watchOnce = (c: KubeClient, events: string[] = []) =>
  new Promise<unknown>(
    (resolve) => void c.watch('/api/v1/secrets', { resourceVersion: '1' }, (t) => events.push(t), resolve),
  );

const bookmark = (rv: string) =>
  `${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: rv } } })}\n`;
const reset = (...r: typeof replies) => {
  watches.length = 0;
  lists = 0;
  replies = r;
};

describe('KubeClient.watch deadline', () => {
  it("asks for client-go's timeoutSeconds (5 to 10 minutes) and for bookmarks", async () => {
    reset((res) => res.writeHead(200).end());
    const c = client({});
    for (let i = 0; i < 3; i++) await watchOnce(c);
    for (const url of watches) {
      expect(url.searchParams.get('allowWatchBookmarks')).toBe('true');
      expect(Number(url.searchParams.get('timeoutSeconds'))).toBeGreaterThanOrEqual(300);
      expect(Number(url.searchParams.get('timeoutSeconds'))).toBeLessThan(600);
    }
    c.close();
  });

  it('ends a watch whose server went silent after answering, with an error naming why', async () => {
    reset((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(bookmark('2')); // then nothing, and the socket stays open
    });
    const c = client();
    const events: string[] = [];
    const err = await watchOnce(c, events);
    expect(events).toEqual(['BOOKMARK']);
    expect(String(err)).toMatch(/nothing from the API server for 1000 ms .*presumed dead/);
    expect(watches[0]!.searchParams.get('timeoutSeconds')).toBe('1');
    c.close();
  });

  it('ends a watch whose server never answers', async () => {
    reset(() => undefined);
    const c = client();
    expect(String(await watchOnce(c))).toMatch(/presumed dead/);
    c.close();
  });

  it('leaves a stream that keeps sending alone: the deadline is for silence, not for the watch', async () => {
    reset((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      let n = 0;
      const tick = setInterval(() => {
        if (++n <= 6) res.write(bookmark(String(n)));
        else {
          clearInterval(tick);
          res.end();
        }
      }, 300); // 2.1 s in all, never 1 s without a byte
    });
    const c = client();
    const events: string[] = [];
    expect(await watchOnce(c, events)).toBeNull();
    expect(events).toHaveLength(6);
    c.close();
  });
});

describe('Informer and bookmarks', () => {
  it('resumes the next watch from the last BOOKMARK, without listing again', async () => {
    reset(
      (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(bookmark('42')),
      (res) => res.writeHead(200, { 'content-type': 'application/json' }).write(bookmark('43')),
    );
    const c = client({ watchTimeoutSeconds: () => 60 });
    const inf = new Informer(c, 'Secret', { namespace: 'shop', log: pino({ level: 'silent' }) });
    const changes: string[] = [];
    inf.onChange((_obj, change) => changes.push(change));
    await inf.start();
    await expect.poll(() => watches.length).toBe(2);
    expect(watches.map((u) => u.searchParams.get('resourceVersion'))).toEqual(['1', '42']);
    expect(lists).toBe(1);
    expect(changes).toEqual([]); // a bookmark is no object
    await inf.stop();
    c.close();
  });
});
