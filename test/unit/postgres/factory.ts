// Buffers for test messages, written by hand from the protocol documentation (not by the agent's own
// serializer), so the parser is checked against the spec rather than against itself.
const int16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstr = (s: string) => Buffer.from(s + '\0', 'utf8');

/** A typed message: code byte, int32 length (self + body), body. */
export function msg(code: string | number, ...body: Buffer[]): Buffer {
  const payload = Buffer.concat(body);
  const c = typeof code === 'string' ? code.charCodeAt(0) : code;
  return Buffer.concat([Buffer.from([c]), int32(payload.length + 4), payload]);
}

/** An untyped startup-phase packet: int32 length (self + rest), then the rest. */
export function packet(...body: Buffer[]): Buffer {
  const payload = Buffer.concat(body);
  return Buffer.concat([int32(payload.length + 4), payload]);
}

export const fe = {
  sslRequest: () => packet(int32(80877103)),
  gssencRequest: () => packet(int32(80877104)),
  cancel: (pid: number, secret: number) => packet(int32(80877102), int32(pid), int32(secret)),
  startup: (params: Record<string, string>, version = 196608) =>
    packet(
      int32(version),
      ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]),
      Buffer.from([0]),
    ),
  query: (text: string) => msg('Q', cstr(text)),
  parse: (name: string, text: string, types: number[] = []) =>
    msg('P', cstr(name), cstr(text), int16(types.length), ...types.map(int32)),
  bind: (
    portal: string,
    statement: string,
    formats: number[],
    values: (Buffer | null)[],
    resultFormats: number[] = [],
  ) =>
    msg(
      'B',
      cstr(portal),
      cstr(statement),
      int16(formats.length),
      ...formats.map(int16),
      int16(values.length),
      ...values.flatMap((v) => (v === null ? [int32(-1)] : [int32(v.length), v])),
      int16(resultFormats.length),
      ...resultFormats.map(int16),
    ),
  functionCall: (oid: number, formats: number[], args: (Buffer | null)[], resultFormat = 0) =>
    msg(
      'F',
      int32(oid),
      int16(formats.length),
      ...formats.map(int16),
      int16(args.length),
      ...args.flatMap((v) => (v === null ? [int32(-1)] : [int32(v.length), v])),
      int16(resultFormat),
    ),
  describe: (kind: 'S' | 'P', name: string) => msg('D', Buffer.from(kind), cstr(name)),
  execute: (portal: string, maxRows = 0) => msg('E', cstr(portal), int32(maxRows)),
  close: (kind: 'S' | 'P', name: string) => msg('C', Buffer.from(kind), cstr(name)),
  sync: () => msg('S'),
  flush: () => msg('H'),
  terminate: () => msg('X'),
  copyData: (data: Buffer) => msg('d', data),
  copyDone: () => msg('c'),
  copyFail: (why: string) => msg('f', cstr(why)),
  password: (text: string) => msg('p', cstr(text)),
};

export const be = {
  authOk: () => msg('R', int32(0)),
  authCleartext: () => msg('R', int32(3)),
  authMd5: (salt: Buffer) => msg('R', int32(5), salt),
  authSasl: (mechanisms: string[]) => msg('R', int32(10), ...mechanisms.map(cstr), Buffer.from([0])),
  authSaslContinue: (data: string) => msg('R', int32(11), Buffer.from(data)),
  authSaslFinal: (data: string) => msg('R', int32(12), Buffer.from(data)),
  authGss: () => msg('R', int32(7)),
  backendKey: (pid: number, secret: number) => msg('K', int32(pid), int32(secret)),
  parameterStatus: (name: string, value: string) => msg('S', cstr(name), cstr(value)),
  readyForQuery: (status = 'I') => msg('Z', Buffer.from(status)),
  dataRow: (values: string[]) =>
    msg('D', int16(values.length), ...values.flatMap((v) => [int32(Buffer.byteLength(v)), Buffer.from(v)])),
  commandComplete: (tag: string) => msg('C', cstr(tag)),
  error: (fields: Record<string, string>) =>
    msg('E', ...Object.entries(fields).map(([k, v]) => Buffer.from(k + v + '\0')), Buffer.from([0])),
};
